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

from starlette.websockets import WebSocket

from rtc_server.auth.current import Actor, actor_from
from rtc_server.auth.models import SessionStage
from rtc_server.auth.sessions import load_session, session_cookie_name
from rtc_server.context import db, meta, settings

#: Close codes (docs/protocol.md).
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def origin_allowed(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        return True  # not a browser: no ambient-cookie risk; the session check still applies
    return origin.rstrip("/") in settings(ws).origins


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
