"""Reading a provider's waiting room: the console's list (names, waits,
device checks) and a waiting patient's own place (numbers only).

Both come from the database on every read (the queue's record), ordered and
estimated by ``lobby.estimate``; pages re-read when ``visit.queue`` is
announced on ``queue:<practitioner id>``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role
from rtc_server.errors import InvalidInput, NotFound
from rtc_server.records.models import Practitioner
from rtc_server.rooms.access import linked_practitioner, patient_names, visit_role
from rtc_server.rooms.lobby import DEFAULT_VISIT, InVisit, Place, Waiting, estimate
from rtc_server.rooms.models import (
    DeviceCheck,
    Participant,
    ParticipantRole,
    ParticipantState,
    Visit,
    VisitStatus,
)
from rtc_server.rooms.shapes import InVisitOut, PlaceOut, PractitionerRef, WaitingOut, WaitingRoomOut

#: A device check older than this is not shown as the person's readiness.
CHECK_FRESH = timedelta(hours=12)


def _expected(visit: Visit) -> timedelta:
    if visit.scheduled_start and visit.scheduled_end and visit.scheduled_end > visit.scheduled_start:
        return visit.scheduled_end - visit.scheduled_start
    return DEFAULT_VISIT


async def _queue(db: AsyncSession, practitioner_id: int, now: datetime
                 ) -> tuple[list[tuple[Participant, Visit]], list[Visit], dict[int, Place]]:
    waiting = (await db.exec(
        select(Participant, Visit).join(Visit, col(Visit.id) == col(Participant.visit_id))
        .where(Visit.practitioner_id == practitioner_id, Visit.status == VisitStatus.open,
               Participant.state == ParticipantState.waiting)
    )).all()
    in_visit = (await db.exec(
        select(Visit).where(Visit.practitioner_id == practitioner_id, Visit.status == VisitStatus.open,
                            col(Visit.started_at).is_not(None))
        .order_by(col(Visit.started_at))
    )).all()
    places = estimate(
        [Waiting(p.id or 0, v.id or 0, p.checked_in_at or now, v.scheduled_start, _expected(v))
         for p, v in waiting],
        [InVisit(v.id or 0, v.started_at or now, _expected(v)) for v in in_visit],
        now,
    )
    return list(waiting), list(in_visit), {place.participant_id: place for place in places}


async def my_place(db: AsyncSession, actor: Actor, visit_id: int, now: datetime) -> PlaceOut:
    """The caller's state in a visit and, while waiting, their place and estimated wait."""
    visit, _ = await visit_role(db, actor, visit_id, "visit.place")
    row = (await db.exec(select(Participant).where(
        Participant.visit_id == visit.id, Participant.user_id == actor.user_id))).first()
    place = None
    if row is not None and row.state == ParticipantState.waiting:
        _, _, places = await _queue(db, visit.practitioner_id, now)
        place = places.get(row.id or 0)
    return PlaceOut(
        visit_id=visit.id or 0, state=row.state if row else None,
        position=place.position if place else None,
        estimated_wait_minutes=place.estimated_wait_minutes if place else None,
        note=row.note if row else None, note_at=row.note_at if row else None,
        ticket=row.ticket if row else None, status=visit.status,
    )


async def waiting_room(db: AsyncSession, actor: Actor, practitioner_id: int | None,
                       now: datetime) -> WaitingRoomOut:
    """A provider's own waiting room (staff: any provider's, by id), with names,
    how long each has waited and their latest device check. Audited."""
    if actor.role == Role.provider:
        own = await linked_practitioner(db, actor)
        actor.require(own is not None and practitioner_id in (None, own), action="visit.queue",
                      resource=f"practitioner:{practitioner_id or own}")
        practitioner_id = own
    else:
        actor.require_role(Role.staff, action="visit.queue")
        if practitioner_id is None:
            raise InvalidInput("practitioner_id", "Choose a provider.")
    assert practitioner_id is not None
    practitioner = await db.get(Practitioner, practitioner_id)
    if practitioner is None:
        raise NotFound()
    waiting, in_visit, places = await _queue(db, practitioner_id, now)
    names = await patient_names(db, [v.patient_id for _, v in waiting] + [v.patient_id for v in in_visit])
    checks = await _latest_checks(db, [p.user_id for p, _ in waiting], now)
    rows = []
    for p, v in waiting:
        place = places[p.id or 0]
        check = checks.get(p.user_id)
        rows.append(WaitingOut(
            participant_id=p.id or 0, visit_id=v.id or 0,
            patient_name=names.get(v.patient_id, "Patient") if p.role == ParticipantRole.patient
            else (p.label or "Guest"),
            role=p.role, reason=v.reason, checked_in_at=p.checked_in_at,
            scheduled_start=v.scheduled_start, position=place.position,
            estimated_wait_minutes=place.estimated_wait_minutes,
            device_check=check.outcome if check else None,
            device_checked_at=check.checked_at if check else None, note=p.note, ticket=p.ticket,
        ))
    rows.sort(key=lambda r: r.position)
    await audit.record(
        db, action="visit.queue", outcome="success", actor_id=actor.user_id,
        actor_role=str(actor.role), resource=f"practitioner:{practitioner_id}",
        request_id=actor.meta.request_id, ip=actor.meta.ip,
    )
    await db.commit()
    return WaitingRoomOut(
        practitioner=PractitionerRef(id=practitioner_id, name=practitioner.display_name),
        waiting=rows,
        in_visit=[InVisitOut(visit_id=v.id or 0, patient_name=names.get(v.patient_id, "Patient"),
                             started_at=v.started_at) for v in in_visit],
    )


async def _latest_checks(db: AsyncSession, user_ids: list[int], now: datetime) -> dict[int, DeviceCheck]:
    if not user_ids:
        return {}
    rows = (await db.exec(
        select(DeviceCheck).where(col(DeviceCheck.user_id).in_(set(user_ids)),
                                  col(DeviceCheck.checked_at) >= now - CHECK_FRESH)
        .order_by(col(DeviceCheck.checked_at))
    )).all()
    return {row.user_id: row for row in rows}  # the latest wins
