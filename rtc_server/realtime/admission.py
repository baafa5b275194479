"""The checks every WebSocket endpoint makes before ``accept``.

A browser always sends ``Origin`` on a WebSocket handshake and cookies ride
along whatever page opened it, so a handshake from a page we do not serve is
refused (cross-site WebSocket hijacking). Then the session cookie must name a
live, fully signed-in session, and the user and the instance must have a free
socket slot. Refusals happen before the upgrade, so the client sees HTTP 403
and no frame is ever exchanged. A refusal for the origin or the session
writes a ``denied`` audit row (``ws.connect``; the actor when the cookie names
one) and a log line naming the refused origin; never the cookie.

The principal is the ``Actor`` of a user session. Lobby display devices
(a device token, no user session) will be a second kind of principal with its
own check here and in the sweeper's liveness query.
"""

from __future__ import annotations

import logging
from collections import Counter

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import cookie_parser
from starlette.types import Scope, Send

from rtc_server import audit
from rtc_server.auth.actor import Actor, RequestMeta
from rtc_server.auth.models import AuthSession, Role, SessionStage, User, UserStatus
from rtc_server.auth.sessions import is_live, session_cookie_name
from rtc_server.auth.tokens import token_hash
from rtc_server.config import Settings
from rtc_server.db import SessionFactory, utcnow
from rtc_server.realtime.sweeper import LivenessCheck
from rtc_server.ws_errors import CLOSE_FORBIDDEN, CLOSE_TRY_LATER, CLOSE_UNAUTHENTICATED

log = logging.getLogger("rtc_server.realtime")


class SocketLimits:
    """Open sockets per user and in all, on this instance, so one account (or a
    flood of tabs) cannot exhaust file descriptors. Per user means per
    instance: behind a load balancer a user may hold this many on each."""

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self.open: Counter[int] = Counter()
        self.count = 0  # kept, not summed: a handshake must not cost O(users)

    def acquire(self, user_id: int) -> bool:
        if self.open[user_id] >= self.per_user or self.count >= self.total:
            return False
        self.open[user_id] += 1
        self.count += 1
        return True

    def release(self, user_id: int) -> None:
        self.count -= 1
        self.open[user_id] -= 1
        if self.open[user_id] <= 0:
            del self.open[user_id]


async def admit(
    scope: Scope, send: Send, *, settings: Settings, session_factory: SessionFactory,
    limits: SocketLimits, resource: str,
) -> Actor | None:
    """The caller with a slot taken (the caller releases it), or None after
    refusing the handshake (the endpoint just returns).

    Reads the handshake straight from the ASGI scope, keeping nothing of it
    but the ``Actor``: this runs once per socket and whatever it keeps, every
    idle socket keeps."""
    origin = _header(scope, b"origin")
    # Without Origin it is not a browser: no ambient-cookie risk; the session check still applies.
    origin_ok = origin is None or origin.rstrip("/") in settings.origins
    cookies = _header(scope, b"cookie")
    token = cookie_parser(cookies).get(session_cookie_name(settings)) if cookies else None
    client = scope.get("client")
    # The user agent stays out: audit rows do not record it, and each socket would keep it.
    request_meta = RequestMeta(scope.get("state", {}).get("request_id"), client[0] if client else None,
                               None)
    async with session_factory() as db:
        actor = await _session_actor(db, token, settings, request_meta) if token else None
        if origin_ok and actor is not None and actor.stage == SessionStage.full:
            if limits.acquire(actor.user_id):
                return actor
            log.info("websocket refused on %s: socket limit reached request_id=%s",
                     resource, request_meta.request_id)
            await send({"type": "websocket.close", "code": CLOSE_TRY_LATER})
            return None
        await audit.record(
            db, action="ws.connect", outcome="denied",
            actor_id=actor.user_id if actor else None, actor_role=str(actor.role) if actor else None,
            resource=resource, request_id=request_meta.request_id, ip=request_meta.ip,
        )
        await db.commit()
    if not origin_ok:
        log.warning("websocket refused on %s: origin %r is not allowed request_id=%s",
                    resource, (origin or "")[:120], request_meta.request_id)
        await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN})
    else:
        log.info("websocket refused on %s: no signed-in session request_id=%s",
                 resource, request_meta.request_id)
        await send({"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED})
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _session_actor(db: AsyncSession, token: str, settings: Settings,
                         request_meta: RequestMeta) -> Actor | None:
    """The actor of a live session (any stage), without counting as activity.

    ``load_session``'s rules, reading only the columns an ``Actor`` needs: a
    handshake is made once per socket and its garbage should be small."""
    if len(token) > 128:
        return None
    row = (await db.exec(
        select(AuthSession.id, AuthSession.stage, AuthSession.ended_at, AuthSession.last_seen_at,
               AuthSession.expires_at, AuthSession.user_id, User.username, User.role,
               User.patient_id, User.status)
        .join(User, col(User.id) == col(AuthSession.user_id))
        .where(AuthSession.id == token_hash(token))
    )).first()
    if row is None or row.status != UserStatus.active or not is_live(row, settings, utcnow()):  # type: ignore[arg-type]
        return None
    return Actor(user_id=row.user_id, username=row.username, role=Role(row.role),
                 patient_id=row.patient_id, session_id=row.id, stage=SessionStage(row.stage),
                 meta=request_meta)


def session_liveness(session_factory: SessionFactory, settings: Settings) -> LivenessCheck:
    """The sweeper's check: which of these session ids are still live, in one
    query (ended, timed out, not fully signed in or a disabled account: not live)."""

    async def live_session_ids(ids: list[str]) -> set[str]:
        now = utcnow()
        async with session_factory() as db:
            rows = (await db.exec(
                select(AuthSession.id, AuthSession.stage, AuthSession.ended_at,
                       AuthSession.last_seen_at, AuthSession.expires_at, User.status)
                .join(User, col(User.id) == col(AuthSession.user_id))
                .where(col(AuthSession.id).in_(ids), col(AuthSession.ended_at).is_(None))
            )).all()
        return {
            row.id for row in rows
            if row.stage == SessionStage.full and row.status == UserStatus.active
            and is_live(row, settings, now)  # type: ignore[arg-type]
        }

    return live_session_ids
