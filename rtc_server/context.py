"""What a route needs from the app and the request, in one place: the
database session, the broker, the mailer, settings, and request metadata
(id, client address) for audit rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import HTTPConnection

from rtc_server.config import Settings

if TYPE_CHECKING:
    from rtc_server.broker.base import Broker


@dataclass(frozen=True)
class RequestMeta:
    request_id: str | None
    ip: str | None
    user_agent: str | None


def meta(conn: HTTPConnection) -> RequestMeta:
    ua = conn.headers.get("user-agent")
    return RequestMeta(
        request_id=conn.scope.get("state", {}).get("request_id"),
        ip=conn.client.host if conn.client else None,
        user_agent=ua[:300] if ua else None,
    )


def db(conn: HTTPConnection) -> AsyncSession:
    """A new database session; use as ``async with db(request) as session``."""
    return conn.app.state.session_factory()


def settings(conn: HTTPConnection) -> Settings:
    return conn.app.state.settings


def broker(conn: HTTPConnection) -> Broker:
    return conn.app.state.broker


def mailer(conn: HTTPConnection) -> Any:
    return conn.app.state.mailer
