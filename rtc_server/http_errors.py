"""Turn exceptions into the one JSON error shape; the only place that does.

Clients get a generic message for anything unexpected; the detail goes to the
log with the request id (and never request bodies, which may hold health data).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from rtc_server.api import API_PREFIX, json_response
from rtc_server.errors import DomainError, InvalidInput, RateLimited, RequestTimeout

log = logging.getLogger("rtc_server.errors")


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_body(code: str, message: str, request: Request, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": request_id(request), **extra}}


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidInput):
        extra["fields"] = [{"field": f, "message": m} for f, m in exc.fields]
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, RequestTimeout):
        headers["Connection"] = "close"  # the rest of the body may still come: don't read it
    return json_response(error_body(exc.code, exc.message, request, **extra), exc.status, headers)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client went away before sending its whole request: normal on the
    internet, not an error of ours. Nobody reads the reply."""
    log.info("client disconnected during %s %s request_id=%s",
             request.method, request.url.path, request_id(request))
    return Response(status_code=400, headers={"Connection": "close"})


#: The HTML 404 when web/errors/404.html cannot be read (still with a language and a viewport).
_PLAIN_NOT_FOUND = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Page not found · Patient Portal</title></head><body><main><h1>Page not found</h1>"
    '<p><a href="/">Go to the start page</a></p></main></body></html>'
)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith(API_PREFIX) and exc.status_code == 404:
        # One layout for every response: web/errors/404.html (header, footer, styles)
        # with the clinic's name, read once in a thread (no file I/O on the event loop).
        # Not web/404.html: StaticFiles would serve that itself, for /api paths too.
        import html
        from pathlib import Path

        import anyio.to_thread
        from starlette.responses import HTMLResponse
        from starlette.routing import Mount

        page = getattr(request.app.state, "not_found_page", None)
        if page is None:
            web = next((r.app for r in request.app.routes if isinstance(r, Mount) and r.name == "web"), None)
            directory = getattr(web, "directory", None)
            page = _PLAIN_NOT_FOUND
            if directory is not None:
                try:
                    page = await anyio.to_thread.run_sync(
                        lambda: (Path(directory) / "errors" / "404.html").read_text(encoding="utf-8"))
                except OSError:
                    log.warning("web/errors/404.html is missing; serving the plain not-found page")
            page = page.replace("Patient Portal", html.escape(request.app.state.settings.clinic_name))
            request.app.state.not_found_page = page
        return HTMLResponse(page, status_code=404)
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "too_large"}
    code = codes.get(exc.status_code, "http_error")
    return json_response(error_body(code, str(exc.detail), request), exc.status_code, exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error(
        "unhandled %s on %s %s request_id=%s",
        type(exc).__name__, request.method, request.url.path, request_id(request),
        exc_info=exc,
    )
    return json_response(
        error_body("internal_error", "Something went wrong on our side.", request), 500
    )


exception_handlers = {
    DomainError: domain_error,
    HTTPException: http_error,
    ClientDisconnect: client_gone,
    Exception: unexpected_error,
}
