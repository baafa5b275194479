"""One open socket: what is sent to it, and how it is closed.

Sending never waits. ``send_text`` writes the frame at once when the socket
is writable, which is the common case, so an idle or keeping-up connection has
no task of its own (the ASGI task that reads it is the only one). Only when a
write has to wait (the client's TCP window is full) does the connection start
one writer task, which drains a bounded outbox in order and ends when it is
empty.

The slow-client policy: when the outbox is full, the connection is closed
with 4008 ("too slow") instead of dropping frames or growing without bound;
the client reconnects and catches up from the database. Nothing is ever
dropped silently. (A peer that stops reading altogether is also cut off by
the server's keepalive ping timeout.)

Closing goes through the same path as sending, so a close never overtakes
frames already sent, and once a connection is closing nothing more is sent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Generator
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from rtc_server.ws_errors import CLOSE_TOO_SLOW

log = logging.getLogger("rtc_server.realtime")

#: Frames a connection may have waiting under backpressure before it counts as too slow.
OUTBOX_FRAMES = 256

#: What a send raises when the peer has gone; the reader sees the disconnect and cleans up.
_GONE = (WebSocketDisconnect, OSError, RuntimeError)

Message = dict[str, Any]


class Connection:
    """An accepted socket, its principal and the channels it listens on."""

    __slots__ = ("_held", "_outbox", "_writer", "channels", "close_code", "outbox_limit", "principal", "ws")

    def __init__(self, ws: WebSocket, principal: Any, *, outbox_limit: int = OUTBOX_FRAMES) -> None:
        self.ws = ws
        #: Who is connected (an ``Actor`` for a user session).
        self.principal = principal
        self.channels: set[str] = set()
        self.outbox_limit = outbox_limit
        #: Set once the connection is closing; nothing is sent after that.
        self.close_code: int | None = None
        self._outbox: deque[Message] | None = None
        self._writer: asyncio.Task[None] | None = None
        #: Frames kept back while the socket is being set up (see ``hold``).
        self._held: list[str] | None = None

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    @property
    def backlog(self) -> int:
        """Frames waiting for the client to read (0 unless under backpressure)."""
        return len(self._outbox) if self._outbox is not None else 0

    def hold(self) -> None:
        """Keep frames back until ``release``: a channel joined first may carry an
        event while the next is being joined, and ``ready`` must be the first frame."""
        self._held = []

    def release(self, first: str) -> None:
        """Send ``first``, then what arrived while held, in order."""
        held, self._held = self._held or [], None
        self.send_text(first)
        for text in held:
            self.send_text(text)

    def send_text(self, text: str) -> None:
        """Send one text frame without waiting (see the module docstring)."""
        if self.close_code is not None:
            return
        if self._held is not None:
            self._held.append(text)
            return
        message = {"type": "websocket.send", "text": text}
        if self._outbox is None:
            self._start(message)
        elif len(self._outbox) < self.outbox_limit:
            self._outbox.append(message)
        else:
            log.info("closing a socket that does not keep up (%d frames waiting)", len(self._outbox))
            self.close(CLOSE_TOO_SLOW, "too slow; reconnect")

    def close(self, code: int, reason: str = "") -> None:
        """Close after what was already sent; idempotent, never waits."""
        if self.close_code is not None:
            return
        self.close_code = code
        message = {"type": "websocket.close", "code": code, "reason": reason}
        if self._outbox is None:
            self._start(message)
        else:
            self._outbox.clear()  # the client will catch up; no point in sending more
            self._outbox.append(message)

    def abandon(self) -> None:
        """The socket is gone: stop the writer, if any, and drop what waits."""
        self.close_code = self.close_code or 1006
        if self._writer is not None:
            self._writer.cancel()
        if self._outbox is not None:
            self._outbox.clear()

    def _start(self, message: Message) -> None:
        """Run the send until it would wait; only then hand it to a writer task."""
        coro = self.ws.send(message).__await__()
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except _GONE:
            self.close_code = self.close_code or 1006
            return
        self._outbox = deque()
        self._writer = asyncio.create_task(self._drain(coro, waiting))

    async def _drain(self, started: Generator[Any, None, Any], waiting: Any) -> None:
        try:
            await _finish(started, waiting)
            while self._outbox:
                await self.ws.send(self._outbox.popleft())
        except _GONE:
            self.close_code = self.close_code or 1006
        finally:
            self._outbox = None
            self._writer = None


async def _finish(coro: Generator[Any, None, Any], waiting: Any) -> Any:
    """Run to its end an awaitable that was started by hand
    (``coro = x.__await__(); coro.send(None)``) and suspended on ``waiting``:
    await what it waits for, then resume it, as the event loop's task would.
    It is what ``asyncio.eager_task_factory`` (Python 3.12+) does for every
    task; here only a send that has to wait pays for a task, and sends that
    complete at once cost none."""
    while True:
        try:
            if waiting is None:  # a bare yield: give the loop one turn
                await asyncio.sleep(0)
            else:
                # Take the future over as a task does when a coroutine yields one.
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:  # cancelled while waiting: let the coroutine clean up
            step = functools.partial(coro.throw, exc)
        else:
            step = functools.partial(coro.send, None)
        try:
            waiting = step()
        except StopIteration as done:
            return done.value
