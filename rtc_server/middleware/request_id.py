"""Give every request an id (``X-Request-ID``) that logs and audit rows share.

The id correlates log lines, audit rows and error replies; it grants nothing,
so it comes from a per-process generator seeded from the system's random
source rather than from ``os.urandom`` per request: that call releases the GIL,
and on a loaded server each release hands the core to another thread for a
whole switch interval.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))  # workers never share ids


def new_request_id() -> str:
    """32 hex digits, as ``uuid4().hex`` gave."""
    return f"{_ids.getrandbits(128):032x}"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a WebSocket keeps no frame of this layer alive for its lifetime.
        if scope["type"] == "websocket":
            scope.setdefault("state", {})["request_id"] = new_request_id()
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)
