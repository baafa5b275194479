"""The generic 500 reply, made inside the middleware stack.

Starlette answers an unexpected exception from its outermost layer, past
every middleware, so that reply would carry neither the security headers nor
``X-Request-ID``. This middleware sits inside them (it is listed last) and
answers first; Starlette's own handler remains only for failures in the
middleware itself.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtc_server.http_errors import unexpected_error


class UnexpectedErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a WebSocket keeps no frame of this layer alive for its lifetime.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # too late for a reply of our own
                raise
            response = await unexpected_error(Request(scope, receive), exc)
            await response(scope, receive, send)
