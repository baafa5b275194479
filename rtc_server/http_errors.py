"""Turn exceptions into the one JSON error shape; the only place that does.

Clients get a generic message for anything unexpected; the detail goes to the
log with the request id (and never request bodies, which may hold health data).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from rtc_server.api import API_PREFIX, json_response
from rtc_server.errors import DomainError, InvalidInput, RateLimited

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
    return json_response(error_body(exc.code, exc.message, request, **extra), exc.status, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith(API_PREFIX) and exc.status_code == 404:
        from starlette.responses import HTMLResponse

        return HTMLResponse(
            "<!doctype html><title>Not found</title><h1>Page not found</h1>"
            '<p><a href="/">Back to the start page</a></p>',
            status_code=404,
        )
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
    Exception: unexpected_error,
}
