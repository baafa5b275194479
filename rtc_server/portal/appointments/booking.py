"""Booking and rescheduling: one open time, one holder.

``book`` guarantees:
- **No double booking.** The appointment row is inserted while the database's
  partial unique indexes (one holder per slot, one per practitioner and start)
  are watching; of any number of patients racing for one time exactly one
  insert succeeds, and the others get 409 ``slot_taken`` ("That time was just
  taken"). A time from published hours gets its ``Slot`` row at this moment,
  under the slot table's unique (practitioner, start). Before inserting, the
  transaction takes the practitioner's row lock (PostgreSQL; SQLite has a single
  writer already), so the check that the time is still open and overlaps no
  other booking of the provider runs against every committed booking.
- **Idempotent.** With an ``Idempotency-Key`` a retry answers what the first
  request answered, and the key with a different request is a 422
  (``idempotency``).
- **Atomic reschedule.** The new time is booked and the old appointment
  cancelled in one transaction: if the new time is taken, the old one stays.

Callers retry on 409 only by choosing another time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.actor import Actor
from rtc_server.config import Settings
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import Conflict, InvalidInput, NotFound
from rtc_server.portal.appointments import idempotency
from rtc_server.portal.appointments.clinic import ClinicRules, clinic_rules
from rtc_server.portal.appointments.events import appointment_changed
from rtc_server.portal.appointments.models import AppointmentReminder
from rtc_server.portal.appointments.service import (
    appointment_out,
    booking_window,
    changeable,
    names_of,
    not_upcoming,
    open_times_on_file,
    own_appointment,
    patient_of,
    record,
    refuse,
    release,
    rules_of,
)
from rtc_server.portal.appointments.shapes import AppointmentOut, BookIn, RescheduleIn
from rtc_server.records.models import (
    RELEASED_APPOINTMENT_STATUSES,
    Appointment,
    AppointmentStatus,
    Practitioner,
    Slot,
    SlotStatus,
)

TAKEN_MESSAGE = "That time was just taken. Please choose another time."


class SlotTaken(Conflict):
    code = "slot_taken"
    message = TAKEN_MESSAGE


class TimeUnavailable(Conflict):
    code = "time_unavailable"
    message = "That time is not open for booking. Please choose another time."


class OverlapsOwn(Conflict):
    code = "overlaps_own_appointment"
    message = "You already have an appointment at that time."


@dataclass(frozen=True)
class Booked:
    appointment: AppointmentOut
    status_code: int
    #: True when this is the stored answer to an earlier request with the same key.
    replayed: bool = False


@dataclass(frozen=True)
class _Want:
    practitioner_id: int
    start: datetime
    kind: str
    reason: str


def _in_window(rules: ClinicRules, start: datetime, now: datetime) -> None:
    earliest, latest = booking_window(rules, now)
    if start < earliest:
        minutes = int(rules.min_notice.total_seconds() // 60)
        raise InvalidInput("start", f"Choose a time at least {minutes} minutes from now.")
    if start > latest:
        raise InvalidInput("start", f"Choose a time within the next {rules.booking_horizon.days // 7} weeks.")


async def _slot_for(db: AsyncSession, practitioner_id: int, start: datetime) -> Slot | None:
    """The slot at (practitioner, start), creating it from published hours if none is on file."""
    found = (
        await db.exec(select(Slot).where(Slot.practitioner_id == practitioner_id, Slot.start == start))
    ).first()
    if found is not None:
        return found
    hours = await rules_of(db, practitioner_id)
    if hours is None:
        return None
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    # Two bookings may create the same slot at once: the unique (practitioner, start)
    # keeps one row, and both go on to race for it on the appointment's index.
    await db.exec(  # type: ignore[call-overload]
        dialect.insert(Slot.__table__)  # type: ignore[attr-defined]
        .values(fhir_id=str(uuid4()), practitioner_id=practitioner_id, schedule_id=hours.schedule_id,
                start=start, end=start + timedelta(minutes=hours.visit_minutes),
                status=SlotStatus.free.value)
        .on_conflict_do_nothing(index_elements=["practitioner_id", "start"])
    )
    return (
        await db.exec(select(Slot).where(Slot.practitioner_id == practitioner_id, Slot.start == start))
    ).first()


async def _hold(
    db: AsyncSession, actor: Actor, patient_id: int, want: _Want, rules: ClinicRules, now: datetime,
    action: str,
) -> Appointment:
    """Insert the appointment for ``want`` in the caller's transaction (see the module
    docstring); raises the refusal (already audited) when the time cannot be had."""
    resource = f"practitioner:{want.practitioner_id}"

    async def no(exc: Exception, outcome: str = "conflict") -> Exception:
        return await refuse(db, actor, action, exc, outcome=outcome,  # type: ignore[arg-type]
                            resource=resource, patient_id=patient_id)

    practitioner = (
        await db.exec(
            select(Practitioner).where(Practitioner.id == want.practitioner_id).with_for_update()
        )
    ).first()
    if practitioner is None or not practitioner.active or practitioner.placeholder:
        raise await no(NotFound(), "not_found")
    slot = await _slot_for(db, want.practitioner_id, want.start)
    if slot is None or slot.id is None:
        raise await no(TimeUnavailable())
    appt = Appointment(
        patient_id=patient_id, practitioner_id=want.practitioner_id, slot_id=slot.id,
        start=want.start, end=as_utc(slot.end), status=AppointmentStatus.booked.value,
        reason=want.reason, kind=want.kind, created_at=now,
    )
    db.add(appt)
    try:
        await db.flush()
    except IntegrityError:
        raise await no(SlotTaken()) from None
    # Under the lock (or SQLite's write lock) now: is the time still open, and free of overlaps?
    around = await open_times_on_file(
        db, want.practitioner_id, want.start - timedelta(minutes=1), want.start + timedelta(minutes=1),
        exclude_appointment=appt.id,
    )
    match = next((t for t in around if t.start == want.start
                  and (t.slot_id is None or t.slot_id == slot.id)), None)
    if match is None:
        raise await no(TimeUnavailable())
    if want.kind not in match.kinds:
        raise await no(InvalidInput("kind", "This time is not offered for that kind of visit."),
                       "refused")
    mine = (
        await db.exec(
            select(Appointment.id).where(
                Appointment.patient_id == patient_id, col(Appointment.id) != appt.id,
                col(Appointment.status).not_in(RELEASED_APPOINTMENT_STATUSES),
                col(Appointment.start) < match.end, col(Appointment.end) > match.start,
            )
        )
    ).first()
    if mine is not None:
        raise await no(OverlapsOwn())
    appt.end = match.end
    slot.end = match.end if match.slot_id is None else slot.end
    slot.status = SlotStatus.busy.value
    db.add_all([appt, slot])
    for hours in rules.reminder_hours:
        due = match.start - timedelta(hours=hours)
        if due > now:
            db.add(AppointmentReminder(appointment_id=appt.id, offset_hours=hours, due_at=due))
    await db.flush()
    return appt


async def _replay(
    db: AsyncSession, actor: Actor, key: str | None, digest: str, now: datetime,
) -> Booked | None:
    """The stored answer to an earlier request with this key, if any."""
    if key is None:
        return None
    prior = await idempotency.find(db, actor.user_id, key, digest, now)
    if prior is None:
        return None
    return Booked(AppointmentOut.model_validate(prior.response), prior.status_code, True)


async def _claim(
    db: AsyncSession, actor: Actor, key: str | None, digest: str, now: datetime,
) -> tuple[Booked | None, Any]:
    """Add the key's row to this transaction (its first write); when a request with
    the same key got there first, wait for it and return its answer instead."""
    if key is None:
        return None, None
    row = idempotency.remember(db, actor.user_id, key, digest, now)
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        replay = await _replay(db, actor, key, digest, now)
        if replay is None:  # pragma: no cover - the winner failed; the client may retry
            raise Conflict("The same request is being processed. Try again.",
                           code="idempotency_in_progress") from None
        return replay, None
    return None, row


async def _replayed(db: AsyncSession, actor: Actor, action: str, replay: Booked, patient_id: int) -> Booked:
    await record(db, actor, f"{action}.replay", resource=f"appointment:{replay.appointment.id}",
                 patient_id=patient_id)
    await db.commit()
    return replay


async def _finish(
    db: AsyncSession, appt: Appointment, key_row: Any, status_code: int, rules: ClinicRules,
    now: datetime,
) -> Booked:
    names = await names_of(db, [appt.practitioner_id])
    out = appointment_out(appt, names.get(appt.practitioner_id), rules, now)
    if key_row is not None:
        key_row.status_code = status_code
        key_row.response = out.model_dump(mode="json")
        db.add(key_row)
    await db.commit()
    return Booked(out, status_code)


async def book(
    db: AsyncSession, actor: Actor, body: BookIn, *, settings: Settings,
    idempotency_key: str | None = None, now: datetime | None = None,
) -> Booked:
    """Book an open time for the signed-in patient (201), or replay the first answer
    to a retried ``idempotency_key`` (see the module docstring)."""
    now = now or utcnow()
    action = "appointment.book"
    patient_id = await patient_of(db, actor, action)
    key = idempotency.check_key(idempotency_key)
    rules = clinic_rules(settings)
    digest = idempotency.request_hash("book", body.model_dump(mode="json"))
    replay = await _replay(db, actor, key, digest, now)
    if replay is None:
        start = body.start.astimezone(now.tzinfo)
        _in_window(rules, start, now)
        replay, key_row = await _claim(db, actor, key, digest, now)
    if replay is not None:
        return await _replayed(db, actor, action, replay, patient_id)
    want = _Want(body.practitioner_id, start, body.kind.value, body.reason)
    appt = await _hold(db, actor, patient_id, want, rules, now, action)
    await record(db, actor, action, resource=f"appointment:{appt.id}", patient_id=patient_id)
    await appointment_changed(db, appt, "booked")
    return await _finish(db, appt, key_row, 201, rules, now)


async def reschedule(
    db: AsyncSession, actor: Actor, appointment_id: int, body: RescheduleIn, *, settings: Settings,
    idempotency_key: str | None = None, now: datetime | None = None,
) -> Booked:
    """Move an upcoming appointment (outside the cut-off) to another open time: the new
    appointment is booked and the old one cancelled in one transaction (200, the new
    appointment; the old one names it in ``replaced_by_id``)."""
    now = now or utcnow()
    action = "appointment.reschedule"
    patient_id = await patient_of(db, actor, action)
    key = idempotency.check_key(idempotency_key)
    rules = clinic_rules(settings)
    digest = idempotency.request_hash(f"reschedule:{appointment_id}", body.model_dump(mode="json"))
    old = await own_appointment(db, actor, patient_id, appointment_id, action)
    replay = await _replay(db, actor, key, digest, now)
    if replay is None:
        await changeable(db, actor, old, action, rules, now)
        start = body.start.astimezone(now.tzinfo)
        want = _Want(
            body.practitioner_id or old.practitioner_id, start,
            (body.kind.value if body.kind else old.kind), body.reason or old.reason or "",
        )
        if want.practitioner_id == old.practitioner_id and start == as_utc(old.start):
            raise InvalidInput("start", "Choose a different time from the current one.")
        _in_window(rules, start, now)
        replay, key_row = await _claim(db, actor, key, digest, now)
    if replay is not None:
        return await _replayed(db, actor, action, replay, patient_id)
    if not await release(db, old, now):
        raise await refuse(db, actor, action, not_upcoming(), outcome="conflict",
                           resource=f"appointment:{appointment_id}", patient_id=patient_id)
    new = await _hold(db, actor, patient_id, want, rules, now, action)
    old.replaced_by_id = new.id
    db.add(old)
    await record(db, actor, action, resource=f"appointment:{appointment_id}", patient_id=patient_id)
    await record(db, actor, "appointment.book", resource=f"appointment:{new.id}", patient_id=patient_id)
    await appointment_changed(db, old, "rescheduled")
    await appointment_changed(db, new, "booked")
    return await _finish(db, new, key_row, 200, rules, now)
