"""The visits API (transport only): parse, call one service function, shape
the answer. Rules live in ``rooms.service``, ``rooms.queue`` and
``rooms.guests``; the call room itself is the ``/ws/v1/visit`` socket
(``rtc_server.signaling.ws``).

The few routes a visit's guest uses (the visit, its place, leave, ICE
servers, chat) take either the portal's session or a guest session (``_caller``);
they are declared ``auth="public"`` only so that ``ApiRoute`` lets the guest
cookie reach them, and refuse anyone with neither (401)."""

from __future__ import annotations

import logging
import time

from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from rtc_server.api import ApiRoute, Call, json_response, no_content
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, SessionStage
from rtc_server.auth.sessions import session_actor
from rtc_server.errors import InvalidInput, RateLimited, Unauthorized
from rtc_server.notify.events import user_channel
from rtc_server.rooms import displays, guests, queue, service, visitchat
from rtc_server.rooms.devicecheck import Busy
from rtc_server.rooms.runtime import visits_of
from rtc_server.rooms.shapes import (
    AdmitIn,
    BoardOut,
    CheckInIn,
    DeviceCheckIn,
    DisplayIn,
    DisplayOut,
    IceServersOut,
    InviteIn,
    InviteOut,
    InvitesOut,
    InviteStateOut,
    NoteIn,
    PairedOut,
    PairIn,
    ParticipantOut,
    PlaceOut,
    RedeemedOut,
    RedeemIn,
    RemoveIn,
    StartIn,
    VisitMessageIn,
    VisitMessagesOut,
    VisitMessagesQuery,
    VisitOut,
    VisitSentOut,
    VisitsOut,
    WaitingRoomOut,
)
from rtc_server.rooms.turn import ice_servers
from rtc_server.signaling.frames import Sdp
from rtc_server.types import DbId

_T = "visits"
log = logging.getLogger("rtc_server.visits")


class WaitingRoomQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    practitioner_id: DbId | None = None


class EchoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sdp: Sdp


class EchoOut(BaseModel):
    id: int
    sdp: str
    seconds: float


async def _portal_actor(call: Call) -> Actor | None:
    """The actor of the request's live, fully signed-in portal session, if any."""
    token = call.session_token
    if not token:
        return None
    actor = await session_actor(call.db, token, call.settings, call.meta,
                                cache=getattr(call.request.app.state, "session_cache", None))
    return actor if actor is not None and actor.stage == SessionStage.full else None


async def _caller(call: Call) -> Actor:
    """The portal session's actor, else the guest session's; 401 for neither."""
    actor = await _portal_actor(call)
    if actor is not None:
        return actor
    guest = call.request.cookies.get(guests.guest_cookie_name(call.settings))
    actor = await guests.guest_actor(call.db, guest, call.meta, call.deps.clock()) if guest else None
    if actor is None:
        raise Unauthorized()
    return actor


async def list_visits(call: Call) -> Response:
    """The patient's upcoming and past video visits."""
    return json_response(await service.list_visits(call.db, call.actor, call.deps.clock()))


async def check_in(call: Call) -> Response:
    """Check in to a video visit: the patient enters the provider's waiting room."""
    visit = await service.check_in(call.db, call.actor, call.body, call.deps.clock())
    return json_response(await queue.my_place(call.db, call.actor, visit.id or 0, call.deps.clock()))


async def start(call: Call) -> Response:
    """A provider starts a video visit now with a patient of theirs."""
    hub = call.request.app.state.realtime.hub
    visit = await service.start_unscheduled(
        call.db, call.actor, call.body.patient_id, call.body.reason, call.deps.clock(),
        settings=call.settings,
        # Pages open on this instance; with several instances a page elsewhere is not seen,
        # and the patient gets the (harmless) mail as well.
        page_open=lambda user_id: bool(hub.members(user_channel(user_id))))
    return json_response(await service.get_visit(call.db, call.actor, visit.id or 0), 201)


async def get_visit(call: Call) -> Response:
    """A visit as its participants see it (guests too: without the record's details)."""
    return json_response(await service.get_visit(call.db, await _caller(call), call.path_int()))


async def place(call: Call) -> Response:
    """The caller's state in a visit and, while waiting, their place in the queue."""
    actor = await _caller(call)
    return json_response(await queue.my_place(call.db, actor, call.path_int(), call.deps.clock()))


async def admit(call: Call) -> Response:
    """Admit a waiting participant into the visit's call room (provider)."""
    row = await service.admit(call.db, call.actor, call.path_int(), call.body.participant_id,
                              call.deps.clock())
    return json_response(ParticipantOut(id=row.id or 0, role=row.role, state=row.state, name=""))


async def note(call: Call) -> Response:
    """Send a short note to a waiting participant (provider)."""
    await service.send_note(call.db, call.actor, call.path_int(), call.body.participant_id,
                            call.body.text, call.deps.clock())
    return no_content()


async def leave(call: Call) -> Response:
    """Leave the waiting room or the call."""
    await service.leave(call.db, await _caller(call), call.path_int(), call.deps.clock())
    return no_content()


async def end(call: Call) -> Response:
    """End the visit for everyone (provider)."""
    visit = await service.end(call.db, call.actor, call.path_int(), call.deps.clock())
    return json_response(await service.get_visit(call.db, call.actor, visit.id or 0))


async def ice(call: Call) -> Response:
    """Fresh ICE servers (STUN/TURN with short-lived credentials) for a participant."""
    actor = await _caller(call)
    await service.require_ice(call.db, actor, call.path_int())
    runtime = await visits_of(call.request.app)
    return json_response(IceServersOut(
        ice_servers=ice_servers(runtime.ice, user=f"u{actor.user_id}", now=time.time()),
        ice_transport_policy=runtime.ice.policy))


async def invite(call: Call) -> Response:
    """Invite a guest (an interpreter, a family member) to a visit (its provider): the
    answer carries a single-use, expiring link, shown once; optionally mailed."""
    out = await guests.create_invite(call.db, call.actor, call.path_int(), label=call.body.label,
                                     email=call.body.email, settings=call.settings,
                                     now=call.deps.clock())
    return json_response(out, 201)


async def list_invites(call: Call) -> Response:
    """The visit's invitations and what became of them (its provider; never the link)."""
    return json_response(await guests.list_invites(call.db, call.actor, call.path_int(),
                                                   call.deps.clock()))


async def revoke_invite(call: Call) -> Response:
    """Withdraw an invitation (its provider): an unused link stops working; a used
    one's guest is removed from the visit."""
    return json_response(await guests.revoke(call.db, call.actor, call.path_int(), call.deps.clock()))


async def remove_participant(call: Call) -> Response:
    """Remove a guest from the visit (its provider): they leave the call and their
    guest session ends."""
    return json_response(await guests.remove_guest(call.db, call.actor, call.path_int(),
                                                   call.body.participant_id, call.deps.clock()))


async def redeem(call: Call) -> Response:
    """A guest opens their link: once, it becomes a guest session for that visit only
    (the ``rtc_guest`` cookie) and a place in its waiting room."""
    done = await guests.redeem(call.db, call.body.token, call.meta, now=call.deps.clock(),
                               secret=call.settings.secret,
                               signed_in=await _portal_actor(call) is not None)
    response = json_response(RedeemedOut(visit_id=done.visit_id, expires_at=done.expires_at))
    response.set_cookie(
        guests.guest_cookie_name(call.settings), done.session_token, httponly=True,
        samesite="strict", secure=call.settings.secure_cookies, path="/",
        max_age=int(guests.GUEST_SESSION.total_seconds()),
    )
    return response


async def chat_messages(call: Call) -> Response:
    """The visit's chat after a sequence number (admitted participants; after the
    visit, the patient and the provider)."""
    return json_response(await visitchat.messages(call.db, await _caller(call), call.path_int(),
                                                  after=call.query.after))


async def chat_send(call: Call) -> Response:
    """Send a chat line in the visit (stored once, even when sent again)."""
    out = await visitchat.post(call.db, call.request.app.state.chat, await _caller(call),
                               call.path_int(), body=call.body.body, client_id=call.body.client_id,
                               now=call.deps.clock())
    return json_response(out, 201 if out.created else 200)


async def waiting_room(call: Call) -> Response:
    """A provider's waiting room: who waits, for how long, and whether their devices are ready."""
    return json_response(await queue.waiting_room(call.db, call.actor, call.query.practitioner_id,
                                                  call.deps.clock()))


async def device_check_result(call: Call) -> Response:
    """Keep the result of the caller's device and connection check."""
    await service.record_device_check(call.db, call.actor, call.body, call.deps.clock())
    return no_content()


async def echo(call: Call) -> Response:
    """Start the connection test: the server sends the browser's media straight back."""
    call.actor.require_role(Role.patient, Role.provider, action="visit.device_check")
    runtime = await visits_of(call.request.app)
    servers = ice_servers(runtime.ice, user=f"u{call.actor.user_id}", now=time.time())
    try:
        check_id, sdp = await runtime.checks.start(call.body.sdp, servers if runtime.ice.turn_urls else [],
                                                   owner=call.actor.user_id)
    except Busy:
        raise RateLimited("Many people are testing their connection right now. "
                          "Please try again in a minute.", retry_after=30) from None
    except Exception as exc:  # aiortc could not use the offer (codecs, sections it does not know)
        log.info("device check: the offer was not usable (%s)", type(exc).__name__)
        raise InvalidInput("sdp", "This browser's offer could not be used for the test.") from None
    return json_response(EchoOut(id=check_id, sdp=sdp, seconds=runtime.checks.seconds), 201)


async def stop_echo(call: Call) -> Response:
    """End the connection test early."""
    runtime = await visits_of(call.request.app)
    await runtime.checks.stop(call.path_int(), owner=call.actor.user_id)
    return no_content()


async def add_display(call: Call) -> Response:
    """Add a waiting-room display; the answer carries its pairing code (once)."""
    out = await displays.add_display(call.db, call.actor, name=call.body.name,
                                     practitioner_id=call.body.practitioner_id,
                                     secret=call.settings.secret, now=call.deps.clock())
    return json_response(out, 201)


async def list_displays(call: Call) -> Response:
    """The waiting-room displays the caller manages."""
    return json_response(await displays.list_displays(call.db, call.actor))


async def revoke_display(call: Call) -> Response:
    """Unpair a display (its screen returns to the pairing form)."""
    return json_response(await displays.revoke(call.db, call.actor, call.path_int(), call.deps.clock()))


async def pair_display(call: Call) -> Response:
    """A clinic screen exchanges its pairing code for a device token (once; throttled)."""
    return json_response(await displays.pair(call.db, call.body.code, call.meta,
                                             secret=call.settings.secret, now=call.deps.clock()))


async def board(call: Call) -> Response:
    """A paired screen's board: ticket numbers waiting and now being seen, nothing else."""
    auth = call.request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    return json_response(await displays.board(call.db, token, call.deps.clock()))


routes = [
    ApiRoute("/visits", list_visits, methods=["GET"], response=VisitsOut, tag=_T),
    ApiRoute("/visits", start, methods=["POST"], body=StartIn, response=VisitOut, status_code=201,
             tag=_T),
    ApiRoute("/visits/check-in", check_in, methods=["POST"], body=CheckInIn, response=PlaceOut,
             tag=_T),
    ApiRoute("/visits/waiting-room", waiting_room, methods=["GET"], query=WaitingRoomQuery,
             response=WaitingRoomOut, tag=_T),
    ApiRoute("/visits/device-check", device_check_result, methods=["POST"], body=DeviceCheckIn,
             status_code=204, tag=_T),
    ApiRoute("/visits/device-check/echo", echo, methods=["POST"], body=EchoIn, response=EchoOut,
             status_code=201, tag=_T),
    ApiRoute("/visits/device-check/echo/{id:int}", stop_echo, methods=["DELETE"], status_code=204,
             tag=_T),
    ApiRoute("/visits/{id:int}", get_visit, methods=["GET"], response=VisitOut, auth="public", tag=_T),
    ApiRoute("/visits/{id:int}/place", place, methods=["GET"], response=PlaceOut, auth="public",
             tag=_T),
    ApiRoute("/visits/{id:int}/admit", admit, methods=["POST"], body=AdmitIn,
             response=ParticipantOut, tag=_T),
    ApiRoute("/visits/{id:int}/note", note, methods=["POST"], body=NoteIn, status_code=204, tag=_T),
    ApiRoute("/visits/{id:int}/leave", leave, methods=["POST"], status_code=204, auth="public",
             tag=_T),
    ApiRoute("/visits/{id:int}/invites", invite, methods=["POST"], body=InviteIn, response=InviteOut,
             status_code=201, tag=_T),
    ApiRoute("/visits/{id:int}/invites", list_invites, methods=["GET"], response=InvitesOut, tag=_T),
    ApiRoute("/visit-invites/{id:int}/revoke", revoke_invite, methods=["POST"],
             response=InviteStateOut, tag=_T),
    ApiRoute("/visits/{id:int}/remove", remove_participant, methods=["POST"], body=RemoveIn,
             response=ParticipantOut, tag=_T),
    ApiRoute("/visits/{id:int}/messages", chat_messages, methods=["GET"], query=VisitMessagesQuery,
             response=VisitMessagesOut, auth="public", tag=_T),
    ApiRoute("/visits/{id:int}/messages", chat_send, methods=["POST"], body=VisitMessageIn,
             response=VisitSentOut, status_code=201, auth="public", tag=_T),
    ApiRoute("/visit-invites/redeem", redeem, methods=["POST"], body=RedeemIn, response=RedeemedOut,
             auth="public", tag=_T),
    ApiRoute("/visits/{id:int}/end", end, methods=["POST"], response=VisitOut, tag=_T),
    ApiRoute("/visits/{id:int}/ice-servers", ice, methods=["GET"], response=IceServersOut,
             auth="public", tag=_T),
    ApiRoute("/displays", list_displays, methods=["GET"], response=DisplayOut, response_list=True, tag=_T),
    ApiRoute("/displays", add_display, methods=["POST"], body=DisplayIn, response=DisplayOut,
             status_code=201, tag=_T),
    ApiRoute("/displays/{id:int}/revoke", revoke_display, methods=["POST"], response=DisplayOut, tag=_T),
    ApiRoute("/displays/pair", pair_display, methods=["POST"], body=PairIn, response=PairedOut,
             auth="public", tag=_T),
    ApiRoute("/displays/board", board, methods=["GET"], response=BoardOut, auth="public", tag=_T),
]
