"""Console endpoints for patient charts: read a chart, and open one outside your
care with a cross-cover reason. The rules live in ``portal.records.access``."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.portal.records import service
from rtc_server.portal.records.shapes import ChartOut, CrossCoverIn, CrossCoverOut


async def read_chart(call: Call) -> Response:
    """A patient's chart (your patients, or others after a cross-cover reason)."""
    return json_response(await service.read_chart(
        call.db, call.actor, call.path_int(), now=call.deps.clock()))


async def cross_cover(call: Call) -> Response:
    """Open the chart of a patient outside your care, for a while, giving the reason (recorded)."""
    return json_response(await service.cross_cover(
        call.db, call.actor, call.path_int(), call.body, now=call.deps.clock()), 201)


_T = "console"

routes: list[BaseRoute] = [
    ApiRoute("/console/patients/{id:int}/chart", read_chart, methods=["GET"], response=ChartOut, tag=_T),
    ApiRoute("/console/patients/{id:int}/cross-cover", cross_cover, methods=["POST"], body=CrossCoverIn,
             response=CrossCoverOut, status_code=201, tag=_T),
]
