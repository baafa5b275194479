"""Presence in a visit's call room, in the database (so any instance knows it):
entering the call through a signaling peer, leaving it, and the room as a
``lobby.CallRoom`` for the relay.

A participant is in the call through one peer at a time (``Participant.peer_id``);
a new join replaces the old peer (another tab, a reconnect), and a leave only
clears the peer it names, so a late leave from a replaced socket changes
nothing. An instance that dies leaves its peers in place until their owners
reconnect (which replaces them) or the visit ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.errors import Conflict
from rtc_server.rooms import events
from rtc_server.rooms.access import participant_names, shown_to, visit_role
from rtc_server.rooms.lobby import CallRoom, Member, may_join_call
from rtc_server.rooms.models import Participant, ParticipantRole, ParticipantState, Visit, VisitStatus
from rtc_server.rooms.service import ensure_host

_P = Participant.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Seat:
    """A socket's place in a call: what the relay checks every frame against."""

    visit_id: int
    practitioner_id: int
    participant_id: int
    user_id: int
    role: str
    peer: str
    #: When this socket took the seat: a late leave from an older socket of the
    #: same peer (a resumed seat) must not clear it.
    since: datetime


@dataclass(frozen=True, slots=True)
class PeerInfo:
    peer: str
    participant_id: int
    role: str
    name: str


class NotAdmitted(Conflict):
    code = "not_admitted"
    message = "You have not been admitted to this visit yet."


class VisitEnded(Conflict):
    code = "visit_ended"
    message = "This visit has ended."


async def join_call(db: AsyncSession, actor: Actor, visit_id: int, peer: str,
                    now: datetime, *, resume: str | None = None) -> tuple[Seat, list[PeerInfo]]:
    """Enter the call of ``visit_id`` through ``peer`` (admitted participants
    only; the visit's provider is admitted on first join). With ``resume``, the
    participant's current peer id, the seat keeps that id instead (a socket that
    reconnected; the others see no change). Returns the seat and the other
    peers in the call now. Audited as ``visit.join``."""
    visit, role = await visit_role(db, actor, visit_id, "visit.join")
    if visit.status == VisitStatus.ended:
        raise VisitEnded()
    if role == ParticipantRole.provider:
        row: Participant | None = await ensure_host(db, actor, visit, now)
    else:
        row = (await db.exec(select(Participant).where(
            Participant.visit_id == visit.id, Participant.user_id == actor.user_id))).first()
    if row is None or not may_join_call(visit_ended=False, state=row.state):
        raise NotAdmitted()
    resumed = resume is not None and row.peer_id == resume
    if resumed:
        peer = resume  # type: ignore[assignment]
    done = await db.exec(update(Participant.__table__).where(  # type: ignore[call-overload]
        _P.id == row.id, _P.state == ParticipantState.admitted).values(peer_id=peer, peer_at=now))
    if done.rowcount != 1:
        raise NotAdmitted()
    if not resumed:
        events.peer_joined(db, visit_id=visit.id or 0, participant_id=row.id or 0, peer=peer)
    await audit.record(
        db, action="visit.join", outcome="success", actor_id=actor.user_id,
        actor_role=str(actor.role), patient_id=visit.patient_id if actor.is_patient else None,
        resource=f"visit:{visit.id}", request_id=actor.meta.request_id, ip=actor.meta.ip,
    )
    await db.commit()
    others = await _peers(db, visit, exclude=row.id or 0, viewer=row.role)
    seat = Seat(visit_id=visit.id or 0, practitioner_id=visit.practitioner_id,
                participant_id=row.id or 0, user_id=actor.user_id, role=row.role, peer=peer,
                since=now)
    return seat, others


async def _peers(db: AsyncSession, visit: Visit, *, exclude: int, viewer: str) -> list[PeerInfo]:
    rows = (await db.exec(select(Participant).where(
        Participant.visit_id == visit.id, Participant.state == ParticipantState.admitted,
        col(Participant.peer_id).is_not(None), Participant.id != exclude))).all()
    names = await participant_names(db, visit, rows)
    return [PeerInfo(peer=r.peer_id or "", participant_id=r.id or 0, role=r.role,
                     name=shown_to(viewer, r.role, names[r.id or 0])) for r in rows]


async def leave_call(db: AsyncSession, seat: Seat) -> bool:
    """``seat``'s peer left the call (its socket closed or it said ``leave``).
    Changes nothing when the participant has since joined through another peer."""
    done = await db.exec(update(Participant.__table__).where(  # type: ignore[call-overload]
        _P.id == seat.participant_id, _P.peer_id == seat.peer, _P.peer_at == seat.since,
    ).values(peer_id=None))
    if done.rowcount != 1:
        await db.rollback()
        return False
    events.peer_left(db, visit_id=seat.visit_id, participant_id=seat.participant_id, peer=seat.peer)
    await db.commit()
    return True


async def load_room(db: AsyncSession, visit_id: int) -> CallRoom:
    """The call room as stored now: admitted participants and their peers."""
    visit = await db.get(Visit, visit_id)
    if visit is None:
        return CallRoom(visit_id=visit_id, ended=True)
    rows = (await db.exec(select(Participant).where(
        Participant.visit_id == visit_id, Participant.state == ParticipantState.admitted))).all()
    names = await participant_names(db, visit, rows)
    return CallRoom(
        visit_id=visit_id, ended=visit.status != VisitStatus.open,
        members={r.id or 0: Member(r.id or 0, r.user_id, r.role, r.peer_id, names[r.id or 0])
                 for r in rows},
    )
