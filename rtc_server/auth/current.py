"""The actor from a request's session cookie, for handlers not yet written as
``api.Call`` handlers (new-style routes get ``call.actor`` from ``ApiRoute``).

``Actor`` and ``actor_from`` live in ``auth.actor`` (no Starlette there) and
are re-exported here so older imports keep working.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from rtc_server.auth.actor import Actor, RequestMeta, actor_from
from rtc_server.auth.models import SessionStage
from rtc_server.auth.sessions import load_session, session_cookie_name
from rtc_server.context import db, meta, settings
from rtc_server.errors import Unauthorized

__all__ = ["Actor", "RequestMeta", "actor_from", "optional_actor", "require_actor"]


async def optional_actor(conn: HTTPConnection, *, allow_partial: bool = False) -> Actor | None:
    cfg = settings(conn)
    token = conn.cookies.get(session_cookie_name(cfg))
    if not token:
        return None
    async with db(conn) as session:
        found = await load_session(session, token, cfg)
    if found is None:
        return None
    actor = actor_from(*found, meta(conn))
    if actor.stage != SessionStage.full and not allow_partial:
        return None
    return actor


async def require_actor(conn: HTTPConnection, *, allow_partial: bool = False) -> Actor:
    actor = await optional_actor(conn, allow_partial=allow_partial)
    if actor is None:
        raise Unauthorized()
    return actor
