"""Console endpoints (``/console/*``): the availability editor and the schedule view.
The rules live in ``console.availability``."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.console import availability
from rtc_server.console.availability import (
    AvailabilityIn,
    AvailabilityOut,
    AvailabilityQuery,
    BookingOut,
    ConsolePractitionerOut,
    ScheduleQuery,
)


async def get_availability(call: Call) -> Response:
    """A provider's published hours (your own as a provider; any provider's as staff)."""
    return json_response(await availability.get_availability(
        call.db, call.actor, call.query.practitioner_id, settings=call.settings, now=call.deps.clock()))


async def set_availability(call: Call) -> Response:
    """Publish a provider's hours (replaces them; existing bookings stay)."""
    return json_response(await availability.set_availability(
        call.db, call.actor, call.body, settings=call.settings, now=call.deps.clock()))


async def list_practitioners(call: Call) -> Response:
    """Providers whose hours you may edit."""
    return json_response(await availability.list_practitioners(call.db, call.actor))


async def list_bookings(call: Call) -> Response:
    """Upcoming bookings and cancellations (one provider's, or everyone's for staff)."""
    return json_response(await availability.list_bookings(
        call.db, call.actor, call.query, now=call.deps.clock()))


_T = "console"

routes: list[BaseRoute] = [
    ApiRoute("/console/availability", get_availability, methods=["GET"], query=AvailabilityQuery,
             response=AvailabilityOut, tag=_T),
    ApiRoute("/console/availability", set_availability, methods=["PUT"], body=AvailabilityIn,
             response=AvailabilityOut, tag=_T),
    ApiRoute("/console/practitioners", list_practitioners, methods=["GET"],
             response=ConsolePractitionerOut, response_list=True, tag=_T),
    ApiRoute("/console/appointments", list_bookings, methods=["GET"], query=ScheduleQuery,
             response=BookingOut, response_list=True, tag=_T),
]
