"""Medical Records endpoints: ``/records`` and ``/records/export``; the rules live in ``service``."""

from __future__ import annotations

import json

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.portal.records import service
from rtc_server.portal.records.shapes import RecordsOut


async def get_records(call: Call) -> Response:
    """Your record: diagnoses, medications, allergies, immunizations, care plans and past
    visits (lab results are ``/labs``)."""
    return json_response(await service.get_records(call.db, call.actor, now=call.deps.clock()))


async def export_records(call: Call) -> Response:
    """Your whole record as a FHIR R4 Bundle (type ``collection``), as a download."""
    out = await service.export_record(call.db, call.actor, now=call.deps.clock())
    return Response(
        json.dumps(out.bundle, separators=(",", ":"), ensure_ascii=False).encode(),
        media_type="application/fhir+json",
        headers={"Content-Disposition": f'attachment; filename="{out.filename}"',
                 "Cache-Control": "no-store"},
    )


_T = "records"

routes: list[BaseRoute] = [
    ApiRoute("/records", get_records, methods=["GET"], response=RecordsOut, tag=_T),
    ApiRoute("/records/export", export_records, methods=["GET"], tag=_T),
]
