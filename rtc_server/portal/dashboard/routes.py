"""``GET /dashboard``: the patient's first screen, in one request."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.portal.dashboard import service
from rtc_server.portal.dashboard.shapes import DashboardOut


async def get_dashboard(call: Call) -> Response:
    """Upcoming appointments, new lab results, messages, refill requests and what needs you."""
    return json_response(await service.dashboard(call.db, call.actor, now=call.deps.clock()))


routes: list[BaseRoute] = [
    ApiRoute("/dashboard", get_dashboard, methods=["GET"], response=DashboardOut, tag="dashboard"),
]
