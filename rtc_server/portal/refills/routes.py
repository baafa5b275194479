"""Refill endpoints: the patient's (``/refills*``), the prescriber's queue
(``/console/refills*``) and the clinic's controlled list
(``/admin/controlled-medications*``). The rules live in ``service``, ``queue``
and ``controlled``."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response, no_content
from rtc_server.pharmacy.sender import PrescriptionSender, sender_for
from rtc_server.portal.appointments.idempotency import HEADER
from rtc_server.portal.refills import controlled, queue, service
from rtc_server.portal.refills.shapes import (
    ApproveIn,
    ControlledIn,
    ControlledOut,
    DenyIn,
    QueueItemOut,
    QueueQuery,
    RefillIn,
    RefillOut,
    RefillsOut,
)


def _sender(call: Call) -> PrescriptionSender:
    return sender_for(call.request.app.state, call.settings.outbox_dir)


# --- the patient's ----------------------------------------------------------------------

async def refill_page(call: Call) -> Response:
    """Your active medications (which can be refilled online), your requests and preferred pharmacy."""
    return json_response(await service.refill_page(call.db, call.actor, settings=call.settings))


async def request_refill(call: Call) -> Response:
    """Ask for a refill. Send an ``Idempotency-Key`` header to make retries safe; 409
    ``already_requested`` while one is open, 409 ``controlled_substance`` for those arranged by phone."""
    out = await service.request_refill(
        call.db, call.actor, call.body, settings=call.settings,
        idempotency_key=call.request.headers.get(HEADER), now=call.deps.clock())
    headers = {"Idempotent-Replayed": "true"} if out.replayed else None
    return json_response(out.refill, out.status_code, headers)


async def get_refill(call: Call) -> Response:
    """One of your requests (404 for any other id)."""
    return json_response(await service.get_request(call.db, call.actor, call.path_int()))


async def cancel_refill(call: Call) -> Response:
    """Withdraw a request before the provider decides it."""
    return json_response(await service.cancel_request(
        call.db, call.actor, call.path_int(), now=call.deps.clock()))


# --- the prescriber's -------------------------------------------------------------------

async def list_queue(call: Call) -> Response:
    """Your refill queue (providers): open requests, or those decided in the last 30 days."""
    return json_response(await queue.list_queue(call.db, call.actor, call.query or QueueQuery(),
                                                now=call.deps.clock()))


async def review(call: Call) -> Response:
    """One request, with what the prescription on file allows."""
    return json_response(await queue.get_item(call.db, call.actor, call.path_int(), now=call.deps.clock()))


async def approve(call: Call) -> Response:
    """Approve (optionally with another quantity or number of refills) and send to the pharmacy."""
    return json_response(await queue.approve(
        call.db, call.actor, call.path_int(), call.body or ApproveIn(), settings=call.settings,
        sender=_sender(call), now=call.deps.clock()))


async def deny(call: Call) -> Response:
    """Deny with a reason the patient reads."""
    return json_response(await queue.deny(call.db, call.actor, call.path_int(), call.body,
                                          settings=call.settings, now=call.deps.clock()))


async def send_again(call: Call) -> Response:
    """Send an approved prescription again after the pharmacy network did not take it."""
    return json_response(await queue.send_again(call.db, call.actor, call.path_int(), settings=call.settings,
                                                sender=_sender(call), now=call.deps.clock()))


# --- the clinic's controlled list -------------------------------------------------------

async def list_controlled(call: Call) -> Response:
    """The clinic's additions to the built-in controlled-substance list."""
    return json_response(await controlled.list_additions(call.db, call.actor))


async def add_controlled(call: Call) -> Response:
    """Add an RxNorm code or an ingredient name that is never refilled online (admins)."""
    out = await controlled.add_addition(call.db, call.actor, call.body, now=call.deps.clock())
    return json_response(out, 201)


async def remove_controlled(call: Call) -> Response:
    """Remove one of the clinic's additions (admins)."""
    await controlled.remove_addition(call.db, call.actor, call.path_int())
    return no_content()


_T = "refills"

routes: list[BaseRoute] = [
    ApiRoute("/refills", refill_page, methods=["GET"], response=RefillsOut, tag=_T),
    ApiRoute("/refills", request_refill, methods=["POST"], body=RefillIn, response=RefillOut,
             status_code=201, tag=_T),
    ApiRoute("/refills/{id:int}", get_refill, methods=["GET"], response=RefillOut, tag=_T),
    ApiRoute("/refills/{id:int}/cancel", cancel_refill, methods=["POST"], response=RefillOut, tag=_T),
    ApiRoute("/console/refills", list_queue, methods=["GET"], query=QueueQuery, response=QueueItemOut,
             response_list=True, tag=_T),
    ApiRoute("/console/refills/{id:int}", review, methods=["GET"], response=QueueItemOut, tag=_T),
    ApiRoute("/console/refills/{id:int}/approve", approve, methods=["POST"], body=ApproveIn,
             response=QueueItemOut, tag=_T),
    ApiRoute("/console/refills/{id:int}/deny", deny, methods=["POST"], body=DenyIn, response=QueueItemOut,
             tag=_T),
    ApiRoute("/console/refills/{id:int}/send", send_again, methods=["POST"], response=QueueItemOut, tag=_T),
    ApiRoute("/admin/controlled-medications", list_controlled, methods=["GET"], response=ControlledOut,
             response_list=True, tag=_T),
    ApiRoute("/admin/controlled-medications", add_controlled, methods=["POST"], body=ControlledIn,
             response=ControlledOut, status_code=201, tag=_T),
    ApiRoute("/admin/controlled-medications/{id:int}", remove_controlled, methods=["DELETE"], status_code=204,
             tag=_T),
]
