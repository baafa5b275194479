"""What a route needs from the app and the request: ``deps(conn)`` (the
``Deps`` built in the lifespan), request metadata for audit rows, and the
older single accessors (``db``, ``settings``, ``broker``, ``mailer``) kept for
handlers not yet written as ``api.Call`` handlers.

``RequestMeta`` lives in ``auth.actor`` (services use it; no Starlette there)
and is re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import HTTPConnection

from rtc_server.auth.actor import RequestMeta
from rtc_server.config import Settings

if TYPE_CHECKING:
    from rtc_server.broker.base import Broker
    from rtc_server.deps import Deps
    from rtc_server.notify.email import Mailer

__all__ = ["RequestMeta", "broker", "db", "deps", "mailer", "meta", "settings"]


def meta(conn: HTTPConnection) -> RequestMeta:
    ua = conn.headers.get("user-agent")
    return RequestMeta(
        request_id=conn.scope.get("state", {}).get("request_id"),
        ip=conn.client.host if conn.client else None,
        user_agent=ua[:300] if ua else None,
    )


def deps(conn: HTTPConnection) -> Deps:
    return conn.app.state.deps


def db(conn: HTTPConnection) -> AsyncSession:
    """A new database session; use as ``async with db(request) as session``."""
    return conn.app.state.session_factory()


def settings(conn: HTTPConnection) -> Settings:
    return conn.app.state.settings


def broker(conn: HTTPConnection) -> Broker:
    return conn.app.state.broker


def mailer(conn: HTTPConnection) -> Mailer:
    return conn.app.state.mailer
