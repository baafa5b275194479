"""Who hears about a change in a visit, live. Events carry ids and states only,
never a name, a reason or a note (pages fetch those through the API), and are
published after the transaction commits (``notify.events.announce``).

Channels:

- ``room:<visit id>``: the visit's participants (waiting room and call) and
  every instance's signaling relay, which keeps its ``CallRoom`` current from
  them: ``visit.participant`` (checked in, admitted, left), ``visit.peer`` (a
  participant entered the call through a signaling peer), ``visit.peer_left``,
  ``visit.note`` and ``visit.ended``;
- ``queue:<practitioner id>``: the provider's waiting room (console,
  waiting patients, displays): ``visit.queue`` whenever it changes;
- ``user:<id>``: ``visit.admitted`` to the admitted person's pages, and
  ``visit.started`` to a patient whose provider started a visit with them.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.notify.events import announce, room_channel, user_channel

PARTICIPANT = "visit.participant"
PEER = "visit.peer"
PEER_LEFT = "visit.peer_left"
NOTE = "visit.note"
ENDED = "visit.ended"
QUEUE = "visit.queue"
ADMITTED = "visit.admitted"
STARTED = "visit.started"

#: Kinds after which a relay reloads its view of the room from the database.
ROOM_CHANGES = frozenset({PARTICIPANT, PEER, PEER_LEFT, ENDED})


def queue_channel(practitioner_id: int) -> str:
    return f"queue:{practitioner_id}"


def participant_changed(db: AsyncSession, *, visit_id: int, practitioner_id: int,
                        participant_id: int, state: str) -> None:
    announce(db, room_channel(visit_id), {"kind": PARTICIPANT, "visit": visit_id,
                                          "participant": participant_id, "state": state})
    queue_changed(db, practitioner_id)


def queue_changed(db: AsyncSession, practitioner_id: int) -> None:
    announce(db, queue_channel(practitioner_id), {"kind": QUEUE, "practitioner": practitioner_id})


def admitted(db: AsyncSession, *, visit_id: int, user_id: int) -> None:
    announce(db, user_channel(user_id), {"kind": ADMITTED, "visit": visit_id})


def started(db: AsyncSession, *, visit_id: int, user_id: int) -> None:
    announce(db, user_channel(user_id), {"kind": STARTED, "visit": visit_id})


def note_sent(db: AsyncSession, *, visit_id: int, participant_id: int) -> None:
    announce(db, room_channel(visit_id), {"kind": NOTE, "visit": visit_id,
                                          "participant": participant_id})


def peer_joined(db: AsyncSession, *, visit_id: int, participant_id: int, peer: str) -> None:
    announce(db, room_channel(visit_id), {"kind": PEER, "visit": visit_id,
                                          "participant": participant_id, "peer": peer})


def peer_left(db: AsyncSession, *, visit_id: int, participant_id: int, peer: str) -> None:
    announce(db, room_channel(visit_id), {"kind": PEER_LEFT, "visit": visit_id,
                                          "participant": participant_id, "peer": peer})


def ended(db: AsyncSession, *, visit_id: int, practitioner_id: int) -> None:
    announce(db, room_channel(visit_id), {"kind": ENDED, "visit": visit_id})
    queue_changed(db, practitioner_id)
