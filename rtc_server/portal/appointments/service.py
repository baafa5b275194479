"""The Appointments tab, the patient's side: their appointments, the providers
they can book with, open times, and cancelling (booking and rescheduling are in
``booking``).

Rules every function keeps:
- Only a signed-in patient uses these; anyone else is refused (403). A patient
  reaches only their own appointments: another patient's id answers 404, the
  same as an id that does not exist.
- Every read and change writes an audit row in the same transaction, and so
  does every refusal (outcome ``denied``, ``refused`` or ``conflict``).
- Cancelling (and rescheduling) is allowed until the clinic's cut-off before
  the start (``ClinicRules.cancel_cutoff``); inside it the answer is 409
  ``inside_cutoff`` and the page tells the patient to call the clinic.
- Changes are announced after commit (``events``); reminders of a cancelled
  appointment are dropped with it.

Services commit their own transaction. Times are aware UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.config import Settings
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import Conflict, DomainError, Forbidden, NotFound
from rtc_server.portal.appointments import availability as av
from rtc_server.portal.appointments.clinic import ClinicRules, ClinicRulesOut, clinic_rules
from rtc_server.portal.appointments.events import appointment_changed
from rtc_server.portal.appointments.models import AppointmentReminder, ProviderAvailability
from rtc_server.portal.appointments.shapes import (
    AppointmentOut,
    AppointmentsOut,
    OpenTimeOut,
    OpenTimesOut,
    OpenTimesQuery,
    PractitionerRef,
    ProviderOut,
)
from rtc_server.records.models import (
    RELEASED_APPOINTMENT_STATUSES,
    Appointment,
    AppointmentStatus,
    Encounter,
    Patient,
    Practitioner,
    Slot,
    SlotStatus,
    VisitKind,
)

PAST_LIMIT = 100
#: Slots and appointments this far around a window are read, so one that starts
#: before the window but overlaps it still counts.
MARGIN = timedelta(days=1)


class InsideCutoff(Conflict):
    code = "inside_cutoff"


def inside_cutoff(rules: ClinicRules) -> InsideCutoff:
    hours = int(rules.cancel_cutoff.total_seconds() // 3600)
    call = f"Please call the clinic at {rules.phone}." if rules.phone else "Please call the clinic."
    return InsideCutoff(
        f"This appointment starts within {hours} hours, so it can't be changed online. {call}"
    )


def not_upcoming() -> Conflict:
    return Conflict("This appointment is no longer upcoming.", code="not_upcoming")


# --- who may ask -------------------------------------------------------------------

async def record(
    db: AsyncSession, actor: Actor, action: str, *, outcome: str = "success",
    resource: str | None = None, patient_id: int | None = None,
) -> None:
    await audit.record(
        db, action=action, outcome=outcome, actor_id=actor.user_id, actor_role=actor.role.value,
        patient_id=patient_id, resource=resource, request_id=actor.meta.request_id, ip=actor.meta.ip,
    )


async def refuse(
    db: AsyncSession, actor: Actor, action: str, exc: DomainError, *, outcome: str = "denied",
    resource: str | None = None, patient_id: int | None = None,
) -> DomainError:
    """Undo the transaction, audit the refusal on its own and return ``exc`` to raise."""
    await db.rollback()
    await record(db, actor, action, outcome=outcome, resource=resource, patient_id=patient_id)
    await db.commit()
    return exc


async def patient_of(db: AsyncSession, actor: Actor, action: str) -> int:
    """The caller's own patient id; anyone who is not a patient is refused (403)."""
    if not actor.is_patient or actor.patient_id is None:
        raise await refuse(db, actor, action, Forbidden())
    return actor.patient_id


async def own_appointment(
    db: AsyncSession, actor: Actor, patient_id: int, appointment_id: int, action: str,
) -> Appointment:
    appt = await db.get(Appointment, appointment_id)
    if appt is None or appt.patient_id != patient_id:
        raise await refuse(db, actor, action, NotFound(), resource=f"appointment:{appointment_id}",
                           patient_id=patient_id)
    return appt


# --- reading what is on file ---------------------------------------------------------

def holds(status: str) -> bool:
    return status not in RELEASED_APPOINTMENT_STATUSES


async def names_of(db: AsyncSession, ids: Sequence[int]) -> dict[int, Practitioner]:
    if not ids:
        return {}
    rows = (await db.exec(select(Practitioner).where(col(Practitioner.id).in_(set(ids))))).all()
    return {p.id: p for p in rows if p.id is not None}


def ref(p: Practitioner | None, practitioner_id: int) -> PractitionerRef:
    return PractitionerRef(id=practitioner_id, name=p.display_name if p else "Your provider")


def appointment_out(
    appt: Appointment, practitioner: Practitioner | None, rules: ClinicRules, now: datetime,
) -> AppointmentOut:
    start, end = as_utc(appt.start), as_utc(appt.end)
    assert start is not None and end is not None and appt.id is not None
    upcoming = holds(appt.status) and start > now
    until = start - rules.cancel_cutoff if upcoming else None
    kind = appt.kind if appt.kind in set(VisitKind) else VisitKind.in_person.value
    return AppointmentOut(
        id=appt.id, start=start, end=end, status=appt.status, kind=VisitKind(kind),
        reason=appt.reason, practitioner=ref(practitioner, appt.practitioner_id),
        cancelled_at=as_utc(appt.cancelled_at), replaced_by_id=appt.replaced_by_id,
        changeable_until=until, can_change=until is not None and now < until,
    )


async def rules_of(db: AsyncSession, practitioner_id: int) -> ProviderAvailability | None:
    return (
        await db.exec(
            select(ProviderAvailability).where(ProviderAvailability.practitioner_id == practitioner_id)
        )
    ).first()


async def open_times_on_file(
    db: AsyncSession, practitioner_id: int, start: datetime, end: datetime, *,
    kind: str | None = None, exclude_appointment: int | None = None,
) -> list[av.OpenTime]:
    """Open times of one provider starting in [start, end) (``availability.open_times``
    over what the database holds now); ``exclude_appointment`` is left out of the
    held periods (the booking being checked)."""
    row = await rules_of(db, practitioner_id)
    rules = av.AvailabilityRules.from_row(row) if row is not None else None
    own_schedule = row.schedule_id if row is not None else None
    lo, hi = start - MARGIN, end + MARGIN
    slots = (
        await db.exec(
            select(Slot).where(
                Slot.practitioner_id == practitioner_id, col(Slot.start) < hi, col(Slot.end) > lo,
            )
        )
    ).all()
    query = select(Appointment).where(
        Appointment.practitioner_id == practitioner_id,
        col(Appointment.status).not_in(RELEASED_APPOINTMENT_STATUSES),
        col(Appointment.start) < hi, col(Appointment.end) > lo,
    )
    if exclude_appointment is not None:
        query = query.where(col(Appointment.id) != exclude_appointment)
    held = (await db.exec(query)).all()
    on_file = [
        av.SlotOnFile(s.id, as_utc(s.start), as_utc(s.end), s.status,  # type: ignore[arg-type]
                      derived=own_schedule is not None and s.schedule_id == own_schedule)
        for s in slots if s.id is not None
    ]
    return av.open_times(
        rules, start=start, end=end, slots=on_file, kind=kind,
        held=[av.Period(as_utc(a.start), as_utc(a.end)) for a in held],  # type: ignore[arg-type]
        held_slot_ids=[a.slot_id for a in held if a.slot_id is not None],
    )


async def care_team(db: AsyncSession, patient_id: int) -> tuple[int | None, set[int]]:
    """The patient's primary practitioner and everyone they have seen or booked."""
    patient = await db.get(Patient, patient_id)
    primary = patient.primary_practitioner_id if patient else None
    seen = set(
        (await db.exec(select(Encounter.practitioner_id).where(Encounter.patient_id == patient_id)
                       .distinct())).all()
    )
    booked = set(
        (await db.exec(select(Appointment.practitioner_id).where(Appointment.patient_id == patient_id)
                       .distinct())).all()
    )
    team = {p for p in seen | booked if p is not None}
    if primary is not None:
        team.add(primary)
    return primary, team


# --- the patient's services -----------------------------------------------------------

async def list_appointments(
    db: AsyncSession, actor: Actor, *, settings: Settings, now: datetime | None = None,
) -> AppointmentsOut:
    """The patient's upcoming appointments (soonest first) and past or cancelled ones
    (latest first, at most ``PAST_LIMIT``)."""
    now = now or utcnow()
    patient_id = await patient_of(db, actor, "appointment.list")
    rules = clinic_rules(settings)
    rows = (
        await db.exec(select(Appointment).where(Appointment.patient_id == patient_id))
    ).all()
    names = await names_of(db, [a.practitioner_id for a in rows])
    out = [appointment_out(a, names.get(a.practitioner_id), rules, now) for a in rows]
    upcoming = sorted((a for a in out if holds(a.status) and a.end > now), key=lambda a: a.start)
    past = sorted((a for a in out if not (holds(a.status) and a.end > now)),
                  key=lambda a: a.start, reverse=True)[:PAST_LIMIT]
    await record(db, actor, "appointment.list", patient_id=patient_id)
    await db.commit()
    return AppointmentsOut(upcoming=upcoming, past=past, clinic=ClinicRulesOut.of(rules))


async def get_appointment(
    db: AsyncSession, actor: Actor, appointment_id: int, *, settings: Settings,
    now: datetime | None = None,
) -> AppointmentOut:
    now = now or utcnow()
    patient_id = await patient_of(db, actor, "appointment.read")
    appt = await own_appointment(db, actor, patient_id, appointment_id, "appointment.read")
    names = await names_of(db, [appt.practitioner_id])
    out = appointment_out(appt, names.get(appt.practitioner_id), clinic_rules(settings), now)
    await record(db, actor, "appointment.read", resource=f"appointment:{appointment_id}",
                 patient_id=patient_id)
    await db.commit()
    return out


async def list_providers(
    db: AsyncSession, actor: Actor, *, settings: Settings, now: datetime | None = None,
) -> list[ProviderOut]:
    """Providers the patient can book: those with published hours or free slots
    ahead. The patient's primary provider first, then others they have seen,
    then the rest by name."""
    now = now or utcnow()
    patient_id = await patient_of(db, actor, "appointment.providers")
    rules = clinic_rules(settings)
    published = {
        r.practitioner_id: r
        for r in (await db.exec(select(ProviderAvailability)
                                .where(col(ProviderAvailability.published).is_(True)))).all()
    }
    own_schedules = select(ProviderAvailability.schedule_id)
    imported_free = select(Slot.practitioner_id).where(  # slots of published hours do not count
        Slot.status == SlotStatus.free.value, col(Slot.start) > now,
        col(Slot.start) < now + rules.booking_horizon,
        or_(col(Slot.schedule_id).is_(None), col(Slot.schedule_id).not_in(own_schedules)),
    ).distinct()
    with_slots = set((await db.exec(imported_free)).all())
    ids = set(published) | with_slots
    names = await names_of(db, list(ids))
    primary, team = await care_team(db, patient_id)
    out: list[ProviderOut] = []
    for pid, p in names.items():
        if not p.active or p.placeholder:
            continue
        kinds: set[str] = set()
        if pid in published:
            kinds |= set(av.offered_kinds(av.AvailabilityRules.from_row(published[pid])))
        if pid in with_slots:
            kinds |= set(av.ALL_KINDS)
        out.append(ProviderOut(
            id=pid, name=p.display_name, specialty=p.specialty, care_team=pid in team,
            primary=pid == primary, kinds=[VisitKind(k) for k in av.ALL_KINDS if k in kinds],
        ))
    out.sort(key=lambda o: (not o.primary, not o.care_team, names[o.id].family_name.lower(), o.id))
    await record(db, actor, "appointment.providers", patient_id=patient_id)
    await db.commit()
    return out


def booking_window(rules: ClinicRules, now: datetime) -> tuple[datetime, datetime]:
    """Starts a patient may book: from the clinic's notice to its horizon."""
    return now + rules.min_notice, now + rules.booking_horizon


async def find_open_times(
    db: AsyncSession, actor: Actor, query: OpenTimesQuery, *, settings: Settings,
    now: datetime | None = None,
) -> OpenTimesOut:
    """Open times of one provider over ``query.days`` days from ``query.start``,
    limited to what the clinic lets patients book (notice and horizon)."""
    now = now or utcnow()
    patient_id = await patient_of(db, actor, "appointment.open_times")
    resource = f"practitioner:{query.practitioner_id}"
    practitioner = await db.get(Practitioner, query.practitioner_id)
    if practitioner is None or not practitioner.active or practitioner.placeholder:
        raise await refuse(db, actor, "appointment.open_times", NotFound(), outcome="not_found",
                           resource=resource, patient_id=patient_id)
    rules = clinic_rules(settings)
    earliest, latest = booking_window(rules, now)
    start = max(query.start or now, earliest)
    end = min(start + timedelta(days=query.days), latest)
    times = (
        await open_times_on_file(db, query.practitioner_id, start, end,
                                 kind=query.kind.value if query.kind else None)
        if start < end else []
    )
    await record(db, actor, "appointment.open_times", resource=resource, patient_id=patient_id)
    await db.commit()
    return OpenTimesOut(
        practitioner=ref(practitioner, query.practitioner_id), clinic_time_zone=rules.time_zone,
        start=start, end=max(start, end),
        times=[OpenTimeOut(start=t.start, end=t.end, kinds=[VisitKind(k) for k in t.kinds])
               for t in times],
    )


async def release(db: AsyncSession, appt: Appointment, now: datetime) -> bool:
    """Cancel ``appt`` in the caller's transaction, if it still holds its time: its
    slot becomes free again and its reminders are dropped. Returns False when a
    concurrent request released it first (the conditional update decides, so two
    reschedules of one appointment cannot both book). Flushes, so the time is
    free for a booking later in the same transaction."""
    result = await db.exec(  # type: ignore[call-overload]
        update(Appointment)
        .where(col(Appointment.id) == appt.id,
               col(Appointment.status).not_in(RELEASED_APPOINTMENT_STATUSES))
        .values(status=AppointmentStatus.cancelled.value, cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    appt.status, appt.cancelled_at = AppointmentStatus.cancelled.value, now
    if appt.slot_id is not None:
        await db.exec(  # type: ignore[call-overload]
            update(Slot)
            .where(col(Slot.id) == appt.slot_id, col(Slot.status) == SlotStatus.busy.value)
            .values(status=SlotStatus.free.value)
            .execution_options(synchronize_session=False)
        )
    await db.exec(  # type: ignore[call-overload]
        delete(AppointmentReminder).where(
            col(AppointmentReminder.appointment_id) == appt.id,
            col(AppointmentReminder.claimed_at).is_(None),
        )
    )
    await db.flush()
    return True


async def changeable(
    db: AsyncSession, actor: Actor, appt: Appointment, action: str, rules: ClinicRules,
    now: datetime,
) -> None:
    """Refuse (409) a change to an appointment that is over, cancelled, or inside the cut-off."""
    start = as_utc(appt.start)
    assert start is not None
    resource = f"appointment:{appt.id}"
    if not holds(appt.status) or start <= now:
        raise await refuse(
            db, actor, action, not_upcoming(), outcome="conflict", resource=resource,
            patient_id=appt.patient_id,
        )
    if start - now < rules.cancel_cutoff:
        raise await refuse(db, actor, action, inside_cutoff(rules), outcome="refused",
                           resource=resource, patient_id=appt.patient_id)


async def cancel(
    db: AsyncSession, actor: Actor, appointment_id: int, *, settings: Settings,
    now: datetime | None = None,
) -> AppointmentOut:
    """Cancel an upcoming appointment (outside the cut-off); the time is free for others."""
    now = now or utcnow()
    action = "appointment.cancel"
    patient_id = await patient_of(db, actor, action)
    appt = await own_appointment(db, actor, patient_id, appointment_id, action)
    rules = clinic_rules(settings)
    await changeable(db, actor, appt, action, rules, now)
    if not await release(db, appt, now):
        raise await refuse(db, actor, action, not_upcoming(), outcome="conflict",
                           resource=f"appointment:{appointment_id}", patient_id=patient_id)
    await record(db, actor, action, resource=f"appointment:{appointment_id}", patient_id=patient_id)
    await appointment_changed(db, appt, "cancelled")
    names = await names_of(db, [appt.practitioner_id])
    out = appointment_out(appt, names.get(appt.practitioner_id), rules, now)
    await db.commit()
    return out
