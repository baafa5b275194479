"""The waiting room, admission and the call room as state machines without I/O.

Events in, decisions out; the service and the signaling socket do the
awaiting (the shape of websockets' ``protocol.py``). Nothing here reads a
clock, a database or a socket, so every rule is tested with plain values.

- ``queue_order`` / ``estimate``: who waits in which order and for about how
  long. Patients wait in the order of their appointment time (an early
  arrival does not jump ahead of an earlier appointment), unscheduled visits
  by check-in time.
- ``decide_admit``: may this participant be admitted now?
- ``CallRoom``: one visit's call as one instance sees it: which admitted
  participant is connected through which signaling peer, and whether a frame
  from one peer may go to another. Built from the database and kept current by
  the room's events; a relay decision never needs a query.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

#: How long a visit is expected to take when nothing says otherwise.
DEFAULT_VISIT = timedelta(minutes=15)


# --- the waiting room -----------------------------------------------------------

@dataclass(frozen=True)
class Waiting:
    """One checked-in person waiting for a provider."""

    participant_id: int
    visit_id: int
    checked_in_at: datetime
    scheduled_start: datetime | None = None
    expected: timedelta = DEFAULT_VISIT

    @property
    def order_key(self) -> tuple[datetime, datetime, int]:
        return (self.scheduled_start or self.checked_in_at, self.checked_in_at, self.participant_id)


@dataclass(frozen=True)
class InVisit:
    """A visit the provider is in now: it delays everyone waiting."""

    visit_id: int
    started_at: datetime
    expected: timedelta = DEFAULT_VISIT


@dataclass(frozen=True)
class Place:
    participant_id: int
    visit_id: int
    #: 1 for the next person to be seen.
    position: int
    #: Rounded up to whole minutes; 0 when the provider is free.
    estimated_wait_minutes: int


def queue_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    return sorted(waiting, key=lambda w: w.order_key)


def estimate(waiting: Iterable[Waiting], in_visit: Sequence[InVisit], now: datetime) -> list[Place]:
    """Everyone's place and estimated wait: what is left of the visits under way
    (at least a minute each, however late they run) plus the expected length of
    every visit ahead."""
    busy = sum(
        (max(v.started_at + v.expected - now, timedelta(minutes=1)) for v in in_visit), timedelta()
    )
    places: list[Place] = []
    ahead = timedelta()
    for position, w in enumerate(queue_order(waiting), start=1):
        wait = busy + ahead
        places.append(Place(w.participant_id, w.visit_id, position, _minutes_up(wait)))
        ahead += w.expected
    return places


def _minutes_up(delta: timedelta) -> int:
    seconds = max(0, int(delta.total_seconds()))
    return (seconds + 59) // 60


# --- admission ---------------------------------------------------------------------

class AdmitDecision(enum.StrEnum):
    admit = "admit"
    already_admitted = "already_admitted"
    not_waiting = "not_waiting"  # left, or never checked in
    visit_ended = "visit_ended"


def decide_admit(*, visit_ended: bool, state: str | None) -> AdmitDecision:
    """Only a waiting participant of an open visit is admitted. The storage does
    the same check again in its conditional UPDATE; this names the refusal."""
    if visit_ended:
        return AdmitDecision.visit_ended
    if state == "admitted":
        return AdmitDecision.already_admitted
    if state != "waiting":
        return AdmitDecision.not_waiting
    return AdmitDecision.admit


def may_join_call(*, visit_ended: bool, state: str | None) -> bool:
    """Nobody enters the call room without being admitted; an early arrival waits."""
    return not visit_ended and state == "admitted"


# --- the call room -----------------------------------------------------------------

class Refusal(enum.StrEnum):
    """Why a signaling frame was not relayed (the error frame's code)."""

    not_joined = "not_joined"  # the sender is not in this room's call
    visit_ended = "visit_ended"
    unknown_peer = "unknown_peer"  # the target is not in this room's call (or left)
    self_target = "self_target"


@dataclass
class Member:
    participant_id: int
    user_id: int
    role: str
    #: The signaling peer this participant is in the call with, if any.
    peer: str | None = None
    #: How the call shows them (the patient's or provider's name, a guest's label).
    name: str = ""


@dataclass
class CallRoom:
    """One visit's call: admitted participants and their peers.

    ``apply_*`` take what happened (from this instance's sockets or from the
    room's events on the broker); ``relay`` decides. A participant is in the
    call through one peer at a time: a new join (another tab, a reconnect)
    replaces the old peer, which ``join`` reports so its socket can be told.
    """

    visit_id: int
    ended: bool = False
    members: dict[int, Member] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_peer: dict[str, int] = {
            m.peer: pid for pid, m in self.members.items() if m.peer is not None
        }

    @property
    def peers(self) -> dict[str, int]:
        """Connected peers → participant ids."""
        return dict(self._by_peer)

    def join(self, participant_id: int, peer: str) -> str | None:
        """``participant_id`` is now in the call through ``peer``; the peer it
        replaced, if any."""
        member = self.members.get(participant_id)
        if member is None:
            return None
        old = member.peer
        if old is not None:
            self._by_peer.pop(old, None)
        member.peer = peer
        self._by_peer[peer] = participant_id
        return old if old != peer else None

    def leave(self, participant_id: int, peer: str) -> bool:
        """``peer`` left; False when it had already been replaced (a stale leave)."""
        member = self.members.get(participant_id)
        if member is None or member.peer != peer:
            return False
        member.peer = None
        self._by_peer.pop(peer, None)
        return True

    def revoke(self, participant_id: int) -> str | None:
        """The participant is no longer admitted; the peer to disconnect, if any."""
        member = self.members.pop(participant_id, None)
        if member is None or member.peer is None:
            return None
        self._by_peer.pop(member.peer, None)
        return member.peer

    def end(self) -> list[str]:
        """The visit ended: every peer is disconnected."""
        self.ended = True
        gone = list(self._by_peer)
        self._by_peer.clear()
        for m in self.members.values():
            m.peer = None
        return gone

    def relay(self, sender: str, target: str) -> Refusal | None:
        """None when a frame from peer ``sender`` may go to peer ``target``."""
        if self.ended:
            return Refusal.visit_ended
        if sender not in self._by_peer:
            return Refusal.not_joined
        if target == sender:
            return Refusal.self_target
        if target not in self._by_peer:
            return Refusal.unknown_peer
        return None


def polite(me: str, other: str) -> bool:
    """Which side of a pair yields in "perfect negotiation": the peer whose id
    sorts first. Both sides compute it from the two ids and agree."""
    return me < other
