"""CSRF defence for cookie-authenticated requests.

Double-submit cookie: a random ``rtc_csrf`` cookie (``__Host-`` prefixed over
https, so a sibling subdomain cannot plant one) must be echoed in the
``X-CSRF-Token`` header on every state-changing API request, and a browser's
``Origin`` (when sent) must be one we serve. A page on another origin can
neither read the cookie nor set the header.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable
from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_cookie_name(secure: bool) -> str:
    return "__Host-rtc_csrf" if secure else "rtc_csrf"


class CsrfMiddleware:
    def __init__(self, app: ASGIApp, *, origins: set[str], secure: bool) -> None:
        self.app = app
        self.origins = origins
        self.secure = secure
        self.cookie = csrf_cookie_name(secure)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a WebSocket keeps no frame of this layer alive for its lifetime.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        jar = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is treated as no cookie
            jar = SimpleCookie()
        token = jar[self.cookie].value if self.cookie in jar else None
        method = scope["method"]
        if scope["path"].startswith("/api/") and method not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin.rstrip("/") not in self.origins:
                await _reject(send, "bad_origin", "This request came from a page we do not serve.")
                return
            sent = headers.get("x-csrf-token", "")
            if not token or not hmac.compare_digest(sent.encode(), token.encode()):
                await _reject(send, "csrf_failed", "Missing or wrong CSRF token; reload the page.")
                return
        fresh = None
        if token is None:
            fresh = token = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = token

        async def send_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                attrs = "Path=/; SameSite=Strict"
                if self.secure:
                    attrs += "; Secure"
                MutableHeaders(scope=message).append("Set-Cookie", f"{self.cookie}={fresh}; {attrs}")
            await send(message)

        await self.app(scope, receive, send_cookie)


async def _reject(send: Send, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({
        "type": "http.response.start",
        "status": 403,
        "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
    })
    await send({"type": "http.response.body", "body": body})
