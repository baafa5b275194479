"""The per-instance signaling relay: SDP and ICE go only to the named peer,
only between admitted participants of the same visit, on whichever instance
each is connected.

Per instance there is one broker subscription. It carries

- ``peer:<peer id>`` for every local socket in a call: a frame published there
  is already the JSON the target's socket gets (``{"type":"offer","from":…}``),
  encoded once by the sender's instance and written as is;
- ``room:<visit id>`` for every visit with a local socket in its call: the
  visit's events (``rooms.events``) mark this instance's ``CallRoom`` of it
  stale.

A relay decision reads the cached ``CallRoom`` (``lobby.CallRoom.relay``):
there is no database read per offer or ICE candidate. After a room event (or a
broker gap) the room is read again once, however many frames wait for it, and
each local socket in the call is told what changed for it: ``peer_joined``
for a peer it has not been told of, ``bye`` for one that left; a socket whose
own seat is gone (replaced by a newer join of the same person, no longer
admitted, the visit ended) gets ``bye`` naming itself and leaves the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from rtc_server.broker.base import Broker, Subscription
from rtc_server.db import SessionFactory
from rtc_server.errors import DomainError
from rtc_server.notify.events import room_channel
from rtc_server.realtime.connection import Connection
from rtc_server.rooms.access import shown_to
from rtc_server.rooms.call import Seat, load_room
from rtc_server.rooms.events import ROOM_CHANGES
from rtc_server.rooms.lobby import CallRoom, Refusal
from rtc_server.signaling.frames import Relayed, encode, relayed_event

log = logging.getLogger("rtc_server.signaling")


def peer_channel(peer: str) -> str:
    return f"peer:{peer}"


class RelayRefused(DomainError):
    """A frame the relay will not forward; an error frame, the socket stays open."""

    status = 409

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(_MESSAGES[refusal], code=str(refusal))


_MESSAGES = {
    Refusal.not_joined: "Join the visit before sending to its participants.",
    Refusal.visit_ended: "This visit has ended.",
    Refusal.unknown_peer: "That participant is not in this visit's call.",
    Refusal.self_target: "A peer cannot send to itself.",
}


@dataclass(eq=False)
class _Local:
    """A local socket in a call, and the peers it has been told of. Until its
    ``joined`` reply is sent (``seat`` None), frames for it wait in ``pending``."""

    conn: Connection
    seat: Seat | None = None
    told: dict[str, int] = field(default_factory=dict)  # peer → participant
    pending: list[str] | None = field(default_factory=list)


@dataclass(eq=False)
class _RoomView:
    visit_id: int
    room: CallRoom | None = None
    #: Bumped by every event; the room is fresh when it was read at the current one.
    generation: int = 0
    read_at: int = -1
    reading: asyncio.Task[CallRoom] | None = None
    refreshing: asyncio.Task[None] | None = None
    local: set[str] = field(default_factory=set)  # local peers in this call

    @property
    def fresh(self) -> bool:
        return self.room is not None and self.read_at == self.generation


class SignalRelay:
    def __init__(self, broker: Broker, session_factory: SessionFactory) -> None:
        self._broker = broker
        self._factory = session_factory
        self._sub: Subscription | None = None
        self._locals: dict[str, _Local] = {}  # peer → local socket
        self._rooms: dict[int, _RoomView] = {}
        #: Room reads done (tests and metrics: no read per relayed frame).
        self.room_reads = 0
        #: Frames relayed by this instance.
        self.relayed = 0

    async def start(self) -> None:
        self._sub = await self._broker.subscribe((), self._on_message, self._on_gap)

    async def close(self) -> None:
        for view in self._rooms.values():
            for task in (view.reading, view.refreshing):
                if task is not None:
                    task.cancel()
        if self._sub is not None:
            await self._sub.close()
        self._locals.clear()
        self._rooms.clear()

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    # --- entering and leaving --------------------------------------------------------

    async def prepare(self, conn: Connection, peer: str) -> None:
        """Listen for frames to ``peer`` for ``conn`` (they wait until ``enter``).
        A new peer is prepared before its id is announced; a resumed one after
        the database confirmed it is the caller's, and an older socket holding
        it is told it was replaced. BrokerUnavailable if the broker cannot
        confirm the subscription."""
        assert self._sub is not None, "relay not started"
        old = self._locals.get(peer)
        if old is not None and old.conn is not conn:
            old.conn.send_text(encode({"type": "bye", "peer": peer, "reason": "replaced"}))
        self._locals[peer] = _Local(conn)
        try:
            await self._sub.add(peer_channel(peer))
        except BaseException:
            self.forget(peer, conn)
            raise

    async def enter(self, conn: Connection, seat: Seat, told: dict[str, int]) -> None:
        """``conn`` is in ``seat``'s call from now on (its ``joined`` reply, which
        named ``told``, has been sent): deliver what waited, then follow the
        room's events. BrokerUnavailable if that cannot be confirmed."""
        assert self._sub is not None, "relay not started"
        local = self._locals.get(seat.peer)
        if local is None:  # forgotten meanwhile (the socket closed)
            return
        local.seat = seat
        local.told = dict(told)
        waiting, local.pending = local.pending or [], None
        for data in waiting:
            conn.send_text(data)
        view = self._rooms.get(seat.visit_id)
        if view is None:
            view = self._rooms[seat.visit_id] = _RoomView(seat.visit_id)
        view.local.add(seat.peer)
        view.generation += 1  # this join changed the room
        try:
            await self._sub.add(room_channel(seat.visit_id))
        except BaseException:
            self.forget(seat.peer, conn)
            raise
        self._refresh_soon(view)

    def forget(self, peer: str, conn: Connection | None = None) -> Seat | None:
        """Stop relaying to ``peer`` (its socket left the call or closed); with
        ``conn``, only if that socket still holds it (not a newer one)."""
        local = self._locals.get(peer)
        if local is None or (conn is not None and local.conn is not conn):
            return None
        del self._locals[peer]
        channels = [peer_channel(peer)]
        view = self._rooms.get(local.seat.visit_id) if local.seat is not None else None
        if view is not None:
            view.local.discard(peer)
            if not view.local:
                for task in (view.reading, view.refreshing):
                    if task is not None and task is not asyncio.current_task():
                        task.cancel()
                del self._rooms[view.visit_id]
                channels.append(room_channel(view.visit_id))
        if self._sub is not None and not self._sub.closed:
            task = asyncio.ensure_future(self._sub.discard(*channels))
            task.add_done_callback(_log_failure)
        return local.seat

    # --- relaying ------------------------------------------------------------------------

    async def relay(self, conn: Connection, peer: str | None, frame: Relayed) -> None:
        """Forward ``frame`` from ``conn``, in the call as ``peer``, to ``frame.to``;
        or raise RelayRefused."""
        local = self._locals.get(peer) if peer is not None else None
        if local is None or local.conn is not conn or local.seat is None:
            raise RelayRefused(Refusal.not_joined)
        seat = local.seat
        room = await self._room(seat.visit_id)
        refusal = room.relay(seat.peer, frame.to)
        if refusal is not None:
            raise RelayRefused(refusal)
        self.relayed += 1
        await self._broker.publish(peer_channel(frame.to), relayed_event(frame, seat.peer))

    async def _room(self, visit_id: int) -> CallRoom:
        view = self._rooms.get(visit_id)
        if view is None:
            raise RelayRefused(Refusal.not_joined)
        while not view.fresh:
            if view.reading is None:
                view.reading = asyncio.ensure_future(self._read(view))
            reading = view.reading
            try:
                await asyncio.shield(reading)
            finally:
                if view.reading is reading and reading.done():
                    view.reading = None
            if self._rooms.get(visit_id) is not view:
                raise RelayRefused(Refusal.not_joined)
        assert view.room is not None
        return view.room

    async def _read(self, view: _RoomView) -> CallRoom:
        generation = view.generation
        async with self._factory() as db:
            room = await load_room(db, view.visit_id)
        self.room_reads += 1
        view.room = room
        view.read_at = generation
        return room

    # --- room events ----------------------------------------------------------------------

    def _on_message(self, channel: str, data: str) -> None:
        if channel.startswith("peer:"):
            local = self._locals.get(channel[5:])
            if local is None:
                return
            if local.pending is not None:
                local.pending.append(data)
            else:
                local.conn.send_text(data)
            return
        if channel.startswith("room:"):
            view = self._rooms.get(int(channel[5:]))
            if view is None:
                return
            try:
                kind = json.loads(data).get("kind")
            except (ValueError, AttributeError):
                return
            if kind in ROOM_CHANGES:
                view.generation += 1
                self._refresh_soon(view)

    def _on_gap(self) -> None:
        """The broker reconnected: events may have been missed; read every room again."""
        for view in self._rooms.values():
            view.generation += 1
            self._refresh_soon(view)

    def _refresh_soon(self, view: _RoomView) -> None:
        if view.refreshing is None or view.refreshing.done():
            view.refreshing = asyncio.ensure_future(self._refresh(view))
            view.refreshing.add_done_callback(_log_failure)

    async def _refresh(self, view: _RoomView) -> None:
        """Read the room until fresh, then tell each local socket what changed for it."""
        try:
            room = await self._room(view.visit_id)
        except RelayRefused:
            return  # nobody here is in this call any more
        for peer in list(view.local):
            local = self._locals.get(peer)
            if local is None or local.seat is None:
                continue
            seat = local.seat
            if room.ended or room.peers.get(peer) != seat.participant_id:
                reason = "ended" if room.ended else (
                    "replaced" if seat.participant_id in room.members else "removed")
                local.conn.send_text(encode({"type": "bye", "peer": peer, "reason": reason}))
                self.forget(peer)
                continue
            now = {p: pid for p, pid in room.peers.items() if p != peer}
            for gone in [p for p in local.told if p not in now]:
                del local.told[gone]
                local.conn.send_text(encode({"type": "bye", "peer": gone, "reason": "left"}))
            for new, pid in now.items():
                if new not in local.told:
                    local.told[new] = pid
                    member = room.members[pid]
                    local.conn.send_text(encode({
                        "type": "peer_joined", "peer": new, "participant": pid,
                        "role": member.role, "name": shown_to(seat.role, member.role, member.name),
                    }))


def _log_failure(task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, RelayRefused):
        log.warning("signaling relay: background work failed: %s", type(exc).__name__,
                    exc_info=exc)
