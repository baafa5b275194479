"""The checks every WebSocket endpoint makes before ``accept``.

A browser always sends ``Origin`` on a WebSocket handshake and cookies ride
along whatever page opened it, so a handshake from a page we do not serve is
refused (cross-site WebSocket hijacking). Then the session cookie must name a
live, fully signed-in session. Both refusals happen before the upgrade, so
the client sees HTTP 403 and no frame is ever exchanged.

While a socket is open, ``still_signed_in`` re-checks the session without
counting as activity: an open socket must not keep an idle session alive, and
it must close when the user logs out anywhere (any instance).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator

from starlette.websockets import WebSocket

from rtc_server.auth.current import Actor, actor_from
from rtc_server.auth.models import SessionStage
from rtc_server.auth.sessions import load_session, session_cookie_name
from rtc_server.context import db, meta, settings

#: Close codes (docs/protocol.md).
CLOSE_POLICY = 1008
CLOSE_UNSUPPORTED = 1003
CLOSE_TOO_BIG = 1009
CLOSE_TRY_LATER = 1013
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def origin_allowed(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        return True  # not a browser: no ambient-cookie risk; the session check still applies
    return origin.rstrip("/") in settings(ws).origins


class SocketLimits:
    """Open sockets per user and in all on this instance, so one account (or a
    flood of tabs) cannot exhaust file descriptors, tasks and subscriptions.
    Built in the lifespan and kept on ``app.state.sockets``."""

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


@contextlib.asynccontextmanager
async def admitted(ws: WebSocket) -> AsyncIterator[Actor | None]:
    """Authenticate and take a socket slot; yields None after refusing the
    handshake (the endpoint just returns). The slot is freed on exit."""
    actor = await authenticate_websocket(ws)
    if actor is None:
        yield None
        return
    limits: SocketLimits = ws.app.state.sockets
    if not limits.acquire(actor.user_id):
        await ws.close(code=CLOSE_TRY_LATER)
        yield None
        return
    try:
        yield actor
    finally:
        limits.release(actor.user_id)


async def authenticate_websocket(ws: WebSocket) -> Actor | None:
    """The caller, or None after refusing the handshake (the caller just returns)."""
    if not origin_allowed(ws):
        await ws.close(code=CLOSE_FORBIDDEN)
        return None
    token = ws.cookies.get(session_cookie_name(settings(ws)))
    found = None
    if token:
        async with db(ws) as session:
            found = await load_session(session, token, settings(ws), touch=False)
    if found is None or found[0].stage != SessionStage.full:
        await ws.close(code=CLOSE_UNAUTHENTICATED)
        return None
    return actor_from(*found, meta(ws))


async def still_signed_in(ws: WebSocket) -> bool:
    token = ws.cookies.get(session_cookie_name(settings(ws)))
    async with db(ws) as session:
        return await load_session(session, token, settings(ws), touch=False) is not None
