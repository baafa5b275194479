"""``/ws/v1/events``: live notifications for the signed-in user.

Services publish on ``user:<id>`` through the broker (any instance); this
endpoint forwards those events to every socket of that user. Frames are
described in docs/protocol.md. The socket closes with 4401 when the session
ends (log-out, timeout, password change), checked every
``SESSION_RECHECK_SECONDS``; a client that reconnects catches up from the
database through the feature's own API (the broker is at-most-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.requests import HTTPConnection
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from rtc_server.auth.ws_auth import (
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_LATER,
    CLOSE_UNAUTHENTICATED,
    CLOSE_UNSUPPORTED,
    admitted,
    still_signed_in,
)
from rtc_server.broker.base import BrokerUnavailable
from rtc_server.context import broker

log = logging.getLogger("rtc_server.live")

SESSION_RECHECK_SECONDS = 15.0
MAX_FRAME_BYTES = 4096
#: Client frames allowed per second (a token bucket of this size, refilled per second).
FRAMES_PER_SECOND = 20


class Ping(BaseModel):
    type: Literal["ping"]
    ref: str | None = Field(default=None, max_length=64)


ClientFrame = Annotated[Ping, Field(discriminator="type")]
_client_frame: TypeAdapter[Ping] = TypeAdapter(ClientFrame)


#: An internal event: one of the user's sessions ended, re-check now (not forwarded).
SESSION_CHECK = "session_check"


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


async def announce_session_change(conn: HTTPConnection, user_id: int) -> None:
    """Tell this user's sockets on every instance to re-check their session now
    (log-out, "end this session"), instead of at the next periodic check."""
    try:
        await broker(conn).publish(user_channel(user_id), {"kind": SESSION_CHECK})
    except BrokerUnavailable:
        log.warning("could not announce a session change; sockets will notice on re-check")


async def events(ws: WebSocket) -> None:
    async with admitted(ws) as actor:
        if actor is not None:
            await _serve(ws, actor.user_id)


async def _serve(ws: WebSocket, user_id: int) -> None:
    await ws.accept()
    try:
        sub = await broker(ws).subscribe([user_channel(user_id)])
    except BrokerUnavailable:
        await ws.close(code=CLOSE_TRY_LATER)
        return
    tasks = [
        asyncio.create_task(_forward(ws, sub)),
        asyncio.create_task(_watch_session(ws)),
        asyncio.create_task(_read(ws)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await sub.close()


async def _forward(ws: WebSocket, sub: object) -> None:
    while True:
        _channel, event = await sub.get()  # type: ignore[attr-defined]
        if event.get("kind") == SESSION_CHECK:
            if await _ended(ws):
                return
            continue
        await ws.send_text(json.dumps({"type": "event", "event": event}, separators=(",", ":")))


async def _watch_session(ws: WebSocket) -> None:
    while True:
        # Jitter, so sockets opened together do not all query at once.
        await asyncio.sleep(SESSION_RECHECK_SECONDS * random.uniform(0.8, 1.2))
        if await _ended(ws):
            return


async def _ended(ws: WebSocket) -> bool:
    """If the socket's session is over, say so and close 4401."""
    if await still_signed_in(ws):
        return False
    await ws.send_text('{"type":"session_ended"}')
    await ws.close(code=CLOSE_UNAUTHENTICATED)
    return True


async def _read(ws: WebSocket) -> None:
    tokens = float(FRAMES_PER_SECOND)
    last = time.monotonic()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        now = time.monotonic()
        tokens = min(FRAMES_PER_SECOND, tokens + (now - last) * FRAMES_PER_SECOND)
        last = now
        if tokens < 1:
            await ws.close(code=CLOSE_POLICY, reason="rate limit")
            return
        tokens -= 1
        text = message.get("text")
        if text is None:
            await ws.close(code=CLOSE_UNSUPPORTED, reason="JSON text frames only")
            return
        if len(text.encode()) > MAX_FRAME_BYTES:
            await ws.close(code=CLOSE_TOO_BIG)
            return
        await ws.send_text(json.dumps(_reply(text), separators=(",", ":")))


def _reply(text: str) -> dict[str, object]:
    try:
        frame = _client_frame.validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "frame"
        return {"type": "error", "code": "bad_frame", "message": f"{field}: {err['msg']}",
                "ref": _ref_of(text)}
    return {"type": "pong", "ref": frame.ref}


def _ref_of(text: str) -> str | None:
    """The client's ``ref`` from a frame that failed validation, if it has one."""
    try:
        ref = json.loads(text).get("ref")
    except (ValueError, AttributeError):
        return None
    return ref if isinstance(ref, str) and len(ref) <= 64 else None


routes = [WebSocketRoute("/ws/v1/events", events)]
