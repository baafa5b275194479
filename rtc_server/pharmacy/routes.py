"""Pharmacy directory endpoints (``/pharmacies*``, ``/admin/pharmacies*``); the
rules live in ``directory``."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.pharmacy import directory
from rtc_server.pharmacy.shapes import (
    LoadedOut,
    PharmacyIn,
    PharmacyOut,
    PharmacySearch,
    PreferredIn,
    PreferredOut,
)


async def search(call: Call) -> Response:
    """Search the clinic's pharmacy directory by name, street, town or ZIP code."""
    return json_response(await directory.search(call.db, call.actor, call.query))


async def get_pharmacy(call: Call) -> Response:
    """One pharmacy of the directory."""
    return json_response(await directory.get_pharmacy(call.db, call.actor, call.path_int()))


async def get_preferred(call: Call) -> Response:
    """Your preferred pharmacy (patients), or null."""
    return json_response(PreferredOut(pharmacy=await directory.get_preferred(call.db, call.actor)))


async def set_preferred(call: Call) -> Response:
    """Choose your preferred pharmacy (patients); refill requests offer it first."""
    out = await directory.set_preferred(call.db, call.actor, call.body.pharmacy_id, now=call.deps.clock())
    return json_response(PreferredOut(pharmacy=out))


async def add_pharmacy(call: Call) -> Response:
    """Add a pharmacy to the directory (admins)."""
    out = await directory.add_pharmacy(call.db, call.actor, call.body, now=call.deps.clock())
    return json_response(out, 201)


async def update_pharmacy(call: Call) -> Response:
    """Change a pharmacy's details, or take it out of the directory with ``active: false`` (admins)."""
    return json_response(await directory.update_pharmacy(
        call.db, call.actor, call.path_int(), call.body, now=call.deps.clock()))


async def load_from_records(call: Call) -> Response:
    """Load the directory from the pharmacy organizations on file (FHIR import) (admins)."""
    return json_response(await directory.load_from_records(call.db, call.actor, now=call.deps.clock()))


_T = "pharmacies"

routes: list[BaseRoute] = [
    ApiRoute("/pharmacies", search, methods=["GET"], query=PharmacySearch, response=PharmacyOut,
             response_list=True, tag=_T),
    ApiRoute("/pharmacies/preferred", get_preferred, methods=["GET"], response=PreferredOut, tag=_T),
    ApiRoute("/pharmacies/preferred", set_preferred, methods=["PUT"], body=PreferredIn,
             response=PreferredOut, tag=_T),
    ApiRoute("/pharmacies/{id:int}", get_pharmacy, methods=["GET"], response=PharmacyOut, tag=_T),
    ApiRoute("/admin/pharmacies", add_pharmacy, methods=["POST"], body=PharmacyIn, response=PharmacyOut,
             status_code=201, tag=_T),
    ApiRoute("/admin/pharmacies/{id:int}", update_pharmacy, methods=["PUT"], body=PharmacyIn,
             response=PharmacyOut, tag=_T),
    ApiRoute("/admin/pharmacies/load-from-records", load_from_records, methods=["POST"],
             response=LoadedOut, tag=_T),
]
