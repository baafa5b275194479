"""``/ws/v1/visit``: the waiting room and the call room of virtual visits
(transport). Built on the shared real-time layer: admission (origin, a live
full session) before ``accept``, size and rate limits, error frames and close
codes come from ``rtc_server.realtime`` and ``ws_errors``; this module only
says what each frame does. Frames: docs/visits.md.

- ``watch`` / ``watch_queue``: the socket follows a visit (``room:<id>``) and
  its provider's waiting room (``queue:<practitioner>``) through the hub. A
  guest follows their visit's ``room:<id>`` only, and only while it is open.
- ``join``: enter the call (admitted participants only, ``rooms.call``); the
  reply names the peers already there and carries fresh ICE servers.
- ``offer`` / ``answer`` / ``ice``: relayed to the named peer only
  (``signaling.relay``), checked against the cached room, no query per frame.
- ``leave``, or the socket closing: the seat is given up and the others get ``bye``.

A visit's guest (``rooms.guests``) has no portal session: a socket that
brings the ``rtc_guest`` cookie and no live portal session is admitted here
with the guest's own check (Origin, a live guest session of an open visit),
then runs the same reader loop. The portal's sweeper does not know guest
sessions; ``signaling.guests`` watches these sockets instead and closes them
(``session_ended``, 4401) when the visit ends, the guest leaves or is removed,
their link is revoked or their session's time runs out. Every frame is
checked against the visit as for anyone.

The route wraps the shared endpoint's ASGI app to know, for each socket, its
app and (after its first frame) its connection: frame handlers find the
app's ``visits`` runtime through a context variable set for the socket's
task, and the seat is given up when the socket's task ends.
"""

from __future__ import annotations

import logging
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from rtc_server import audit
from rtc_server.auth.actor import Actor, RequestMeta
from rtc_server.auth.models import Role, SessionStage
from rtc_server.auth.sessions import session_actor, session_cookie_name
from rtc_server.broker.base import BrokerUnavailable
from rtc_server.db import utcnow
from rtc_server.errors import Conflict, InvalidInput
from rtc_server.notify.events import room_channel
from rtc_server.realtime import READY, Connection, Endpoint
from rtc_server.rooms import call as calls
from rtc_server.rooms.access import linked_practitioner, visit_role
from rtc_server.rooms.events import queue_channel
from rtc_server.rooms.guests import guest_cookie_name, guest_session
from rtc_server.rooms.models import ParticipantRole, VisitStatus
from rtc_server.rooms.runtime import VisitRuntime, visits_of
from rtc_server.rooms.turn import ice_servers
from rtc_server.signaling.frames import (
    FRAME_MAX,
    Answer,
    Ice,
    Join,
    Leave,
    Offer,
    Ping,
    Watch,
    WatchQueue,
    client_frames,
    encode,
)
from rtc_server.ws_errors import CLOSE_FORBIDDEN, CLOSE_TRY_LATER, CLOSE_UNAUTHENTICATED, reply_to

log = logging.getLogger("rtc_server.signaling")

#: Channels one socket may follow besides its call (a page follows one or two).
MAX_WATCHED = 8
#: Frames per second per socket: a join trickles a few dozen ICE candidates at once.
FRAMES_PER_SECOND = 40.0


def new_peer_id() -> str:
    """A signaling peer's id: 16 URL-safe characters (96 random bits), never reused."""
    return secrets.token_urlsafe(12)


@dataclass(eq=False)
class _Socket:
    """One socket's app, and its connection once a frame has named it."""

    app: Any
    conn: Connection | None = None


_socket: ContextVar[_Socket] = ContextVar("visit_socket")


async def _on_frame(conn: Connection, frame: Any) -> None:
    socket = _socket.get()
    socket.conn = conn
    runtime = await visits_of(socket.app)
    actor: Actor = conn.principal
    if isinstance(frame, Offer | Answer | Ice):
        await runtime.relay.relay(conn, runtime.peer_of.get(conn), frame)
    elif isinstance(frame, Join):
        await _join(runtime, conn, actor, frame)
    elif isinstance(frame, Watch):
        await _watch(runtime, conn, actor, frame)
    elif isinstance(frame, WatchQueue):
        await _watch_queue(runtime, conn, actor, frame)
    elif isinstance(frame, Leave):
        await _leave(runtime, conn)
        conn.send_text(encode({"type": "left", "ref": frame.ref}))
    elif isinstance(frame, Ping):
        conn.send_text(encode({"type": "pong", "ref": frame.ref}))


async def _follow(runtime: VisitRuntime, conn: Connection, channels: list[str]) -> None:
    hub = _socket.get().app.state.realtime.hub
    new = [c for c in channels if c not in conn.channels]
    if len(conn.channels) + len(new) > MAX_WATCHED:
        raise Conflict("This page follows too many waiting rooms.", code="too_many")
    for channel in new:
        await hub.join(conn, channel)


async def _watch(runtime: VisitRuntime, conn: Connection, actor: Actor, frame: Watch) -> None:
    async with runtime.deps.session_factory() as db:
        visit, role = await visit_role(db, actor, frame.visit, "visit.watch")
    if role == ParticipantRole.guest:
        # A guest hears their visit, never the provider's waiting room, and not after the end.
        if visit.status == VisitStatus.ended:
            raise Conflict("This visit has ended.", code="visit_ended")
        channels = [room_channel(frame.visit)]
    else:
        channels = [room_channel(frame.visit), queue_channel(visit.practitioner_id)]
    await _follow(runtime, conn, channels)
    conn.send_text(encode({"type": "watching", "visit": frame.visit, "role": role, "ref": frame.ref}))


async def _watch_queue(runtime: VisitRuntime, conn: Connection, actor: Actor,
                       frame: WatchQueue) -> None:
    practitioner_id = frame.practitioner_id
    if actor.role == Role.provider:
        async with runtime.deps.session_factory() as db:
            own = await linked_practitioner(db, actor)
        actor.require(own is not None and practitioner_id in (None, own), action="visit.queue",
                      resource=f"practitioner:{practitioner_id or own}")
        practitioner_id = own
    else:
        actor.require_role(Role.staff, action="visit.queue")
        if practitioner_id is None:
            raise InvalidInput("practitioner_id", "Choose a provider.")
    assert practitioner_id is not None
    await _follow(runtime, conn, [queue_channel(practitioner_id)])
    conn.send_text(encode({"type": "watching_queue", "practitioner_id": practitioner_id,
                           "ref": frame.ref}))


async def _join(runtime: VisitRuntime, conn: Connection, actor: Actor, frame: Join) -> None:
    if conn in runtime.peer_of:
        await _leave(runtime, conn)  # one call per socket: joining again starts afresh
    relay = runtime.relay
    fresh = new_peer_id()
    # Listen for frames to a new peer before anyone can learn its id.
    await relay.prepare(conn, fresh)
    try:
        async with runtime.deps.session_factory() as db:
            seat, others = await calls.join_call(db, actor, frame.visit, fresh, runtime.deps.clock(),
                                                 resume=frame.resume)
        if seat.peer != fresh:  # resumed: the others know that id already
            relay.forget(fresh, conn)
            await relay.prepare(conn, seat.peer)
    except BaseException:
        relay.forget(fresh, conn)
        raise
    runtime.peer_of[conn] = seat.peer
    conn.send_text(encode({
        "type": "joined", "visit": seat.visit_id, "peer": seat.peer,
        "participant": seat.participant_id, "role": seat.role,
        "resumed": seat.peer != fresh,
        "peers": [{"peer": o.peer, "participant": o.participant_id, "role": o.role, "name": o.name}
                  for o in others],
        "ice_servers": ice_servers(runtime.ice, user=f"u{actor.user_id}", now=time.time()),
        "ice_transport_policy": runtime.ice.policy,
        "ref": frame.ref,
    }))
    await relay.enter(conn, seat, {o.peer: o.participant_id for o in others})


async def _leave(runtime: VisitRuntime, conn: Connection) -> None:
    peer = runtime.peer_of.pop(conn, None)
    if peer is None:
        return
    seat = runtime.relay.forget(peer, conn)
    if seat is None:
        return
    async with runtime.deps.session_factory() as db:
        await calls.leave_call(db, seat)


async def _closed(socket: _Socket) -> None:
    """The socket's task ended: give up its call seat, if any."""
    runtime = getattr(socket.app.state, "visits", None)
    if socket.conn is None or not isinstance(runtime, VisitRuntime) or socket.conn not in runtime.peer_of:
        return
    try:
        await _leave(runtime, socket.conn)
    except Exception:  # the database may be away; the peer is replaced when its owner rejoins
        log.warning("could not record a peer leaving its call", exc_info=True)


def _no_channels(actor: Actor) -> list[str]:
    return []


class VisitEndpoint(Endpoint):
    """The shared endpoint, plus the admission of a visit's guests (module docstring)."""

    async def serve(self, ws: WebSocket) -> None:
        settings = ws.app.state.realtime.settings
        guest = ws.cookies.get(guest_cookie_name(settings))
        portal = ws.cookies.get(session_cookie_name(settings))
        # As the visit routes do: a live portal session first, else the guest's.
        if guest is None or (portal is not None and await self._signed_in(ws, portal)):
            await super().serve(ws)
        else:
            await self._serve_guest(ws, guest)

    @staticmethod
    async def _signed_in(ws: WebSocket, token: str) -> bool:
        layer = ws.app.state.realtime
        meta = RequestMeta(None, ws.client.host if ws.client else None, None)
        async with layer.session_factory() as db:
            actor = await session_actor(db, token, layer.settings, meta, touch=False)
        return actor is not None and actor.stage == SessionStage.full

    async def _serve_guest(self, ws: WebSocket, token: str) -> None:
        if (await ws.receive())["type"] != "websocket.connect":
            return
        layer = ws.app.state.realtime
        origin = ws.headers.get("origin")
        origin_ok = origin is None or origin.rstrip("/") in layer.settings.origins
        meta = RequestMeta(ws.scope.get("state", {}).get("request_id"),
                           ws.client.host if ws.client else None, None)
        async with layer.session_factory() as db:
            found = await guest_session(db, token, meta, utcnow()) if origin_ok else None
            actor = found.actor if found is not None else None
            if found is None:
                await audit.record(db, action="ws.connect", outcome="denied", actor_id=None,
                                   actor_role=str(Role.guest), resource=self.resource,
                                   request_id=meta.request_id, ip=meta.ip)
                await db.commit()
        if found is None or actor is None:
            await ws.send({"type": "websocket.close",
                           "code": CLOSE_UNAUTHENTICATED if origin_ok else CLOSE_FORBIDDEN})
            return
        watcher = (await visits_of(ws.app)).guests
        if not layer.limits.acquire(actor.user_id):
            await ws.send({"type": "websocket.close", "code": CLOSE_TRY_LATER})
            return
        conn = Connection(ws, actor, outbox_limit=layer.outbox_limit)
        try:
            await ws.send({"type": "websocket.accept"})
            try:
                await watcher.add(conn, found.visit_id)
            except BrokerUnavailable:
                conn.close(CLOSE_TRY_LATER, "try again later")
                return
            conn.send_text(READY)
            await self._read(layer, conn)
        except (WebSocketDisconnect, OSError):
            pass
        except Exception as exc:
            reply = reply_to(exc, ref=None, where=self.path)
            if reply.close is not None:
                conn.close(reply.close, reply.reason)
        finally:
            watcher.discard(conn, found.visit_id)
            layer.limits.release(actor.user_id)
            layer.hub.leave(conn)
            conn.abandon()


VISIT = VisitEndpoint(
    "/ws/v1/visit", frames=client_frames, on_frame=_on_frame, channels=_no_channels,
    max_frame_bytes=FRAME_MAX, frames_per_second=FRAMES_PER_SECOND,
)


def _route() -> WebSocketRoute:
    route = VISIT.route()
    inner = route.app

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        socket = _Socket(scope["app"])
        token = _socket.set(socket)
        try:
            await inner(scope, receive, send)
        finally:
            _socket.reset(token)
            await _closed(socket)

    route.app = app
    return route


routes = [_route()]
