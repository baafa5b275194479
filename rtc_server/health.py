"""Health, API description and legal versions: the public, data-free routes."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from rtc_server.api import api_route, json_response, openapi_document
from rtc_server.config import PRIVACY_VERSION, TERMS_VERSION
from rtc_server.context import broker, db


class HealthOut(BaseModel):
    status: str
    database: dict[str, object]
    broker: dict[str, object]


class LegalOut(BaseModel):
    terms_version: str
    privacy_version: str


class CsrfOut(BaseModel):
    csrf_token: str


async def healthz(request: Request) -> Response:
    """Database and broker state; 503 when either is down."""
    database: dict[str, object]
    try:
        async with db(request) as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        database = {"ok": True, "kind": request.app.state.settings.database_url_effective.split(":")[0]}
    except (SQLAlchemyError, OSError) as exc:
        database = {"ok": False, "error": type(exc).__name__}
    b = await broker(request).health()
    ok = bool(database["ok"]) and bool(b.get("ok"))
    body = HealthOut(status="ok" if ok else "degraded", database=database, broker=b)
    return json_response(body, 200 if ok else 503)


async def openapi(request: Request) -> Response:
    """This document."""
    doc = request.app.state.openapi
    if doc is None:
        doc = request.app.state.openapi = openapi_document(request.app.routes)
    return json_response(doc)


async def legal(_request: Request) -> Response:
    """Current versions of the Terms and the Privacy Policy."""
    return json_response(LegalOut(terms_version=TERMS_VERSION, privacy_version=PRIVACY_VERSION))


async def csrf(request: Request) -> Response:
    """The CSRF token (also set as the ``rtc_csrf`` cookie) to echo in ``X-CSRF-Token``."""
    return json_response(CsrfOut(csrf_token=request.scope["state"]["csrf_token"]))


routes = [
    api_route("/openapi.json", openapi, methods=["GET"], auth="public", tag="meta"),
    api_route("/legal", legal, methods=["GET"], response=LegalOut, auth="public", tag="meta"),
    api_route("/auth/csrf", csrf, methods=["GET"], response=CsrfOut, auth="public", tag="auth"),
]
