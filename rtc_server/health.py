"""Health, API description and legal versions: the public, data-free routes."""

from __future__ import annotations

import logging

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from rtc_server.api import ApiRoute, Call, json_response, openapi_document
from rtc_server.broker.base import BrokerUnavailable
from rtc_server.config import PRIVACY_VERSION, TERMS_VERSION

log = logging.getLogger("rtc_server.health")


class HealthOut(BaseModel):
    status: str


class LegalOut(BaseModel):
    terms_version: str
    privacy_version: str


class ClinicOut(BaseModel):
    name: str
    phone: str | None
    hours: str | None
    timezone: str


class CsrfOut(BaseModel):
    csrf_token: str


async def healthz(request: Request) -> Response:
    """``ok``, or ``degraded`` with 503 when the database or the broker is down.
    Nothing more: the public must not learn how busy the site is or what runs
    it; the reason goes to the log."""
    deps = request.app.state.deps
    ok = True
    try:
        async with deps.session_factory() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health: database unavailable: %s", type(exc).__name__)
        ok = False
    try:
        broker_ok = bool((await deps.broker.health()).get("ok"))
    except (BrokerUnavailable, OSError):
        broker_ok = False
    if not broker_ok:
        log.warning("health: broker unavailable")
        ok = False
    return json_response(HealthOut(status="ok" if ok else "degraded"), 200 if ok else 503)


async def openapi(call: Call) -> Response:
    """This document."""
    state = call.request.app.state
    if state.openapi is None:
        state.openapi = openapi_document(call.request.app.routes)
    return json_response(state.openapi)


async def legal(_call: Call) -> Response:
    """Current versions of the Terms and the Privacy Policy."""
    return json_response(LegalOut(terms_version=TERMS_VERSION, privacy_version=PRIVACY_VERSION))


async def clinic(call: Call) -> Response:
    """Whom patients are dealing with: the clinic's name, phone, hours and time zone
    (every page's header and footer, the help desk, "please call" messages)."""
    cfg = call.settings
    return json_response(ClinicOut(name=cfg.clinic_name, phone=cfg.clinic_phone,
                                   hours=cfg.clinic_hours, timezone=cfg.clinic_timezone))


async def csrf(call: Call) -> Response:
    """The CSRF token (also set as the ``rtc_csrf`` cookie) to echo in ``X-CSRF-Token``."""
    return json_response(CsrfOut(csrf_token=call.request.scope["state"]["csrf_token"]))


routes = [
    ApiRoute("/openapi.json", openapi, methods=["GET"], auth="public", tag="meta"),
    ApiRoute("/legal", legal, methods=["GET"], response=LegalOut, auth="public", tag="meta"),
    ApiRoute("/clinic", clinic, methods=["GET"], response=ClinicOut, auth="public", tag="meta"),
    ApiRoute("/auth/csrf", csrf, methods=["GET"], response=CsrfOut, auth="public", tag="auth"),
]
