"""``GET /dashboard``: the patient's first screen, in one request."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.portal.dashboard import service
from rtc_server.portal.dashboard.shapes import DashboardOut


async def get_dashboard(call: Call) -> Response:
    """Upcoming appointments, new lab results, messages, refill requests and what needs you."""
    if call.session_opened:  # the session check read the database: hand its connection back
        await call.db.rollback()  # (nothing was written) before the page waits for its audit batch
    # No ORM session: the page's one statement on the instance's read pool.
    return json_response(await service.dashboard_read(call.deps.session_factory, call.actor,
                                                      now=call.deps.clock()))


routes: list[BaseRoute] = [
    ApiRoute("/dashboard", get_dashboard, methods=["GET"], response=DashboardOut, tag="dashboard"),
]
