"""``/ws/v1/visit``: the waiting room and the call room of virtual visits
(transport). Built on the shared real-time layer: admission (origin, a live
full session) before ``accept``, size and rate limits, error frames and close
codes come from ``rtc_server.realtime`` and ``ws_errors``; this module only
says what each frame does. Frames: docs/visits.md.

- ``watch`` / ``watch_queue``: the socket follows a visit (``room:<id>``) and
  its provider's waiting room (``queue:<practitioner>``) through the hub.
- ``join``: enter the call (admitted participants only, ``rooms.call``); the
  reply names the peers already there and carries fresh ICE servers.
- ``offer`` / ``answer`` / ``ice``: relayed to the named peer only
  (``signaling.relay``), checked against the cached room, no query per frame.
- ``leave``, or the socket closing: the seat is given up and the others get ``bye``.

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

from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role
from rtc_server.errors import Conflict, InvalidInput
from rtc_server.notify.events import room_channel
from rtc_server.realtime import Connection, Endpoint
from rtc_server.rooms import call as calls
from rtc_server.rooms.access import linked_practitioner, visit_role
from rtc_server.rooms.events import queue_channel
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
    await _follow(runtime, conn, [room_channel(frame.visit), queue_channel(visit.practitioner_id)])
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


VISIT = Endpoint(
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
