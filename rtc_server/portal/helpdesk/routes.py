"""Help Desk endpoints: the requester's (``/help/tickets*``), the public form for
people who cannot sign in (``/help/requests``) and the help desk's queue
(``/console/tickets*``). The rules live in ``service``."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.portal.helpdesk import service
from rtc_server.portal.helpdesk.shapes import (
    MessageIn,
    PublicTicketIn,
    PublicTicketOut,
    ReplyIn,
    StaffQueueItem,
    StaffQueueQuery,
    StaffTicketOut,
    TicketIn,
    TicketOut,
    TicketSummaryOut,
)


async def open_ticket(call: Call) -> Response:
    """Send a question or report a problem to the help desk."""
    out = await service.open_ticket(call.db, call.actor, call.body, now=call.deps.clock())
    return json_response(out, 201)


async def open_public_ticket(call: Call) -> Response:
    """For people who cannot sign in: a question to the help desk, answered by email
    (a few an hour per IP address)."""
    out = await service.open_public_ticket(call.db, call.body, meta=call.meta, settings=call.settings,
                                           now=call.deps.clock())
    return json_response(out, 202)


async def my_tickets(call: Call) -> Response:
    """Your help desk tickets, latest first."""
    return json_response(await service.my_tickets(call.db, call.actor))


async def my_ticket(call: Call) -> Response:
    """One of your tickets and its replies (reading it marks them read)."""
    return json_response(await service.my_ticket(call.db, call.actor, call.path_int(), now=call.deps.clock()))


async def add_message(call: Call) -> Response:
    """Write again on one of your tickets."""
    return json_response(await service.add_message(call.db, call.actor, call.path_int(), call.body,
                                                   now=call.deps.clock()))


async def queue(call: Call) -> Response:
    """The help desk's tickets (help-desk staff and admins)."""
    return json_response(await service.queue(call.db, call.actor, call.query or StaffQueueQuery()))


async def read_ticket(call: Call) -> Response:
    """A ticket with its messages and who sent it (help-desk staff and admins)."""
    return json_response(await service.read_ticket(call.db, call.actor, call.path_int()))


async def reply(call: Call) -> Response:
    """Answer a ticket, optionally closing it; the requester is told."""
    return json_response(await service.reply(call.db, call.actor, call.path_int(), call.body,
                                             settings=call.settings, now=call.deps.clock()))


async def close(call: Call) -> Response:
    """Close a ticket without a reply."""
    return json_response(await service.close(call.db, call.actor, call.path_int(), now=call.deps.clock()))


_T = "help desk"

routes: list[BaseRoute] = [
    ApiRoute("/help/tickets", open_ticket, methods=["POST"], body=TicketIn, response=TicketOut,
             status_code=201, tag=_T),
    ApiRoute("/help/tickets", my_tickets, methods=["GET"], response=TicketSummaryOut, response_list=True,
             tag=_T),
    ApiRoute("/help/tickets/{id:int}", my_ticket, methods=["GET"], response=TicketOut, tag=_T),
    ApiRoute("/help/tickets/{id:int}/messages", add_message, methods=["POST"], body=MessageIn,
             response=TicketOut, tag=_T),
    ApiRoute("/help/requests", open_public_ticket, methods=["POST"], body=PublicTicketIn,
             response=PublicTicketOut, status_code=202, tag=_T, auth="public"),
    ApiRoute("/console/tickets", queue, methods=["GET"], query=StaffQueueQuery, response=StaffQueueItem,
             response_list=True, tag=_T),
    ApiRoute("/console/tickets/{id:int}", read_ticket, methods=["GET"], response=StaffTicketOut, tag=_T),
    ApiRoute("/console/tickets/{id:int}/reply", reply, methods=["POST"], body=ReplyIn,
             response=StaffTicketOut, tag=_T),
    ApiRoute("/console/tickets/{id:int}/close", close, methods=["POST"], response=StaffTicketOut, tag=_T),
]
