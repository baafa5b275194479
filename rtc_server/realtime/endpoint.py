"""A WebSocket endpoint on the shared layer, and the loop that reads it.

A feature declares what is particular to it (path, client frames, channels,
what a frame does) and gets the rest: admission before ``accept``, the hub,
the sweeper, limits, error frames and close codes::

    EVENTS = Endpoint("/ws/v1/events", frames=ClientFrame, on_frame=reply,
                      channels=lambda actor: [user_channel(actor.user_id)])
    routes = [EVENTS.route()]

Per connection: the ASGI task runs the one reader loop below; there is no
other task unless a send has to wait (``Connection``). The reader checks the
rate, type and size of each frame, validates it against the endpoint's
pydantic union, and calls ``on_frame``. Bad frames get ``bad_frame`` and the
socket stays open; everything else is decided by ``ws_errors``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from rtc_server.auth.actor import Actor, record_denial
from rtc_server.broker.base import BrokerUnavailable
from rtc_server.errors import DomainError
from rtc_server.realtime.admission import admit
from rtc_server.realtime.connection import Connection
from rtc_server.realtime.ratelimit import TokenBucket
from rtc_server.ws_errors import (
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_LATER,
    CLOSE_UNSUPPORTED,
    MAX_REF,
    bad_frame,
    reply_to,
)

if TYPE_CHECKING:
    from rtc_server.realtime.layer import RealtimeLayer

log = logging.getLogger("rtc_server.realtime")

#: Sent once the socket listens on all its channels: fetch state after this and nothing is missed.
READY = '{"type":"ready"}'


class _Ref(BaseModel):
    """Just the ``ref`` of a frame that failed validation, to echo it back."""

    model_config = ConfigDict(extra="ignore")
    ref: str | None = Field(default=None, max_length=MAX_REF)


_ref_only = TypeAdapter(_Ref)


@dataclass(frozen=True)
class Endpoint:
    path: str
    #: The client frames: a pydantic discriminated union on ``type``.
    frames: TypeAdapter[Any]
    #: ``await on_frame(conn, frame)`` for each valid frame; replies with ``conn.send_text``.
    on_frame: Callable[[Connection, Any], Awaitable[None]]
    #: Channels a connection listens on from the start.
    channels: Callable[[Actor], Iterable[str]]
    max_frame_bytes: int = 4096
    frames_per_second: float = 20.0

    @property
    def resource(self) -> str:
        """How audit rows name this endpoint."""
        return f"ws:{self.path}"

    def route(self) -> WebSocketRoute:
        # An instance, not a function: Starlette routes to it as a plain ASGI app,
        # without the session and exception wrappers it would keep for every socket.
        return WebSocketRoute(self.path, self)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not ``async``: returning serve's coroutine keeps one frame less per socket.
        return self.serve(WebSocket(scope, receive, send))

    async def serve(self, ws: WebSocket) -> None:
        """The whole life of one socket; a subclass may wrap it (``super().serve(ws)``)."""
        if (await ws.receive())["type"] != "websocket.connect":
            return
        layer: RealtimeLayer = ws.app.state.realtime
        actor = await admit(ws.scope, ws.send, settings=layer.settings,
                            session_factory=layer.session_factory, limits=layer.limits,
                            resource=self.resource)
        if actor is None:
            return
        conn = Connection(ws, actor, outbox_limit=layer.outbox_limit)
        try:
            await ws.send({"type": "websocket.accept"})
            conn.hold()  # ready comes first, whatever a channel joined early carries meanwhile
            try:
                for channel in self.channels(actor):
                    await layer.hub.join(conn, channel)
            except BrokerUnavailable:
                conn.close(CLOSE_TRY_LATER, "try again later")
                return
            layer.sweeper.add(conn, actor.session_id)
            conn.release(READY)
            await self._read(layer, conn)
        except (WebSocketDisconnect, OSError):
            pass  # the client went away; nothing to tell anyone
        except Exception as exc:
            reply = reply_to(exc, ref=None, where=self.path)
            if reply.close is not None:
                conn.close(reply.close, reply.reason)
        finally:
            layer.limits.release(actor.user_id)
            layer.hub.leave(conn)
            layer.sweeper.discard(conn, actor.session_id)
            conn.abandon()

    async def _read(self, layer: RealtimeLayer, conn: Connection) -> None:
        receive = conn.ws.receive
        clock = asyncio.get_running_loop().time
        bucket = TokenBucket(self.frames_per_second, now=clock())
        limit = self.max_frame_bytes
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if conn.closing:
                continue  # read on until the close handshake ends
            if not bucket.take(clock()):
                conn.close(CLOSE_POLICY, "rate limit")
                continue
            text = message.get("text")
            if text is None:
                conn.close(CLOSE_UNSUPPORTED, "JSON text frames only")
                continue
            if len(text) > limit or (not text.isascii() and len(text.encode()) > limit):
                conn.close(CLOSE_TOO_BIG, "frame too big")
                continue
            try:
                frame = self.frames.validate_json(text)
            except ValidationError as exc:
                conn.send_text(bad_frame(exc, _ref_of(text, exc)))
                continue
            try:
                await self.on_frame(conn, frame)
            except Exception as exc:
                await self._refuse(layer, conn, exc, getattr(frame, "ref", None))

    async def _refuse(self, layer: RealtimeLayer, conn: Connection, exc: Exception,
                      ref: str | None) -> None:
        if isinstance(exc, DomainError) and exc.denial is not None:
            async with layer.session_factory() as db:
                await record_denial(db, exc, action="ws.frame", resource=self.resource)
        reply = reply_to(exc, ref=ref, where=self.path)
        if reply.frame is not None:
            conn.send_text(reply.frame)
        if reply.close is not None:
            conn.close(reply.close, reply.reason)


def _ref_of(text: str, exc: ValidationError) -> str | None:
    """The client's ``ref`` from a frame that failed validation, if it is JSON
    at all and has one. Parsed by pydantic's own parser, whose depth limit
    turns a deeply nested frame into an error, never a RecursionError."""
    if any(err["type"] == "json_invalid" for err in exc.errors(include_url=False, include_input=False)):
        return None
    try:
        return _ref_only.validate_json(text).ref
    except ValidationError:
        return None
