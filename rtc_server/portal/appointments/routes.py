"""Appointments endpoints (``/appointments*``); the rules live in ``service`` and ``booking``."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.portal.appointments import booking, service
from rtc_server.portal.appointments.booking import Booked
from rtc_server.portal.appointments.idempotency import HEADER
from rtc_server.portal.appointments.shapes import (
    AppointmentOut,
    AppointmentsOut,
    BookIn,
    OpenTimesOut,
    OpenTimesQuery,
    ProviderOut,
    RescheduleIn,
)


def _booked(result: Booked) -> Response:
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return json_response(result.appointment, result.status_code, headers)


async def list_appointments(call: Call) -> Response:
    """Your upcoming and past appointments, and the clinic's rules for changing them."""
    return json_response(await service.list_appointments(
        call.db, call.actor, settings=call.settings, now=call.deps.clock()))


async def get_appointment(call: Call) -> Response:
    """One of your appointments (404 for any other id)."""
    return json_response(await service.get_appointment(
        call.db, call.actor, call.path_int(), settings=call.settings, now=call.deps.clock()))


async def list_providers(call: Call) -> Response:
    """Providers you can book with, your care team first."""
    return json_response(await service.list_providers(
        call.db, call.actor, settings=call.settings, now=call.deps.clock()))


async def open_times(call: Call) -> Response:
    """A provider's open times (UTC instants; the page shows them in your zone)."""
    return json_response(await service.find_open_times(
        call.db, call.actor, call.query, settings=call.settings, now=call.deps.clock()))


async def book(call: Call) -> Response:
    """Book an open time. Send an ``Idempotency-Key`` header to make retries safe;
    409 ``slot_taken`` when someone else just took the time."""
    return _booked(await booking.book(
        call.db, call.actor, call.body, settings=call.settings,
        idempotency_key=call.request.headers.get(HEADER), now=call.deps.clock()))


async def reschedule(call: Call) -> Response:
    """Move an appointment to another open time (the old one is cancelled in the
    same transaction); honours ``Idempotency-Key`` like booking."""
    return _booked(await booking.reschedule(
        call.db, call.actor, call.path_int(), call.body, settings=call.settings,
        idempotency_key=call.request.headers.get(HEADER), now=call.deps.clock()))


async def cancel(call: Call) -> Response:
    """Cancel an appointment; 409 ``inside_cutoff`` when it is too close to change online."""
    return json_response(await service.cancel(
        call.db, call.actor, call.path_int(), settings=call.settings, now=call.deps.clock()))


_T = "appointments"

routes: list[BaseRoute] = [
    ApiRoute("/appointments", list_appointments, methods=["GET"], response=AppointmentsOut, tag=_T),
    ApiRoute("/appointments", book, methods=["POST"], body=BookIn, response=AppointmentOut,
             status_code=201, tag=_T),
    ApiRoute("/appointments/providers", list_providers, methods=["GET"], response=ProviderOut,
             response_list=True, tag=_T),
    ApiRoute("/appointments/open-times", open_times, methods=["GET"], query=OpenTimesQuery,
             response=OpenTimesOut, tag=_T),
    ApiRoute("/appointments/{id:int}", get_appointment, methods=["GET"], response=AppointmentOut, tag=_T),
    ApiRoute("/appointments/{id:int}/reschedule", reschedule, methods=["POST"], body=RescheduleIn,
             response=AppointmentOut, tag=_T),
    ApiRoute("/appointments/{id:int}/cancel", cancel, methods=["POST"], response=AppointmentOut, tag=_T),
]
