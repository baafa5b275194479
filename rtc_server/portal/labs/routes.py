"""Lab result endpoints for patients (``/labs*``); the rules live in ``service``."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.portal.labs import service
from rtc_server.portal.labs.shapes import LabDetailOut, LabsOut


async def list_labs(call: Call) -> Response:
    """Your released lab results, by test, each with its history."""
    if call.session_opened:  # the session check read the database: hand its connection back
        await call.db.rollback()  # (nothing was written) before the list waits for its audit batch
    body = await service.list_labs_read(call.deps.session_factory, call.actor, now=call.deps.clock())
    return Response(body, media_type="application/json")


async def read_lab(call: Call) -> Response:
    """One of your results and its test's history; it is no longer shown as new."""
    return json_response(await service.read_lab(call.db, call.actor, call.path_int(), now=call.deps.clock()))


_T = "labs"

routes: list[BaseRoute] = [
    ApiRoute("/labs", list_labs, methods=["GET"], response=LabsOut, tag=_T),
    ApiRoute("/labs/{id:int}", read_lab, methods=["GET"], response=LabDetailOut, tag=_T),
]
