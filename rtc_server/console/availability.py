"""The console's availability editor and schedule view.

A provider publishes their own hours (their account must be linked to the
practitioner on file); staff may edit any provider's hours and see any
provider's bookings. Admins and patients are refused (403, audited). Every read
and change is audited.

Publishing replaces the provider's whole set of hours at once. Bookings already
made stay as they are, even if the new hours no longer include them; the open
times patients see change at once (they are computed from the hours on read,
see ``portal.appointments.availability``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, User
from rtc_server.config import Settings
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import Conflict, Forbidden, InvalidInput, NotFound
from rtc_server.notify.events import announce
from rtc_server.portal.appointments.availability import (
    AvailabilityRules,
    BreakBlock,
    HoursBlock,
    check_zone,
)
from rtc_server.portal.appointments.events import STAFF_CHANNEL
from rtc_server.portal.appointments.models import ProviderAvailability
from rtc_server.portal.appointments.service import open_times_on_file, record, refuse
from rtc_server.portal.appointments.shapes import PractitionerRef
from rtc_server.records.models import (
    RELEASED_APPOINTMENT_STATUSES,
    Appointment,
    Patient,
    Practitioner,
    Schedule,
    VisitKind,
)
from rtc_server.types import DbId

SCHEDULE_SERVICE = "Published hours"
PREVIEW_DAYS = 14


class AvailabilityIn(BaseModel):
    """The whole set of hours to publish (it replaces what was there)."""

    model_config = ConfigDict(extra="forbid")
    #: Staff name the provider; a provider's own hours need no id.
    practitioner_id: DbId | None = None
    visit_minutes: int = Field(ge=10, le=240)
    #: Default: the clinic's zone.
    time_zone: str | None = Field(default=None, max_length=64)
    weekly: list[HoursBlock] = Field(default_factory=list, max_length=42)
    breaks: list[BreakBlock] = Field(default_factory=list, max_length=42)
    days_off: list[date] = Field(default_factory=list, max_length=400)
    published: bool = True

    _zone = field_validator("time_zone")(lambda v: v if v is None else check_zone(v))


class AvailabilityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    practitioner_id: DbId | None = None


class AvailabilityOut(BaseModel):
    practitioner: PractitionerRef
    clinic_time_zone: str
    #: None until the provider first publishes hours.
    rules: AvailabilityRules | None
    updated_at: datetime | None
    #: Open times over the next PREVIEW_DAYS days with these hours (imported slots included).
    open_next_two_weeks: int


class ConsolePractitionerOut(BaseModel):
    id: int
    name: str
    specialty: str | None
    has_hours: bool


class ScheduleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    practitioner_id: DbId | None = None
    days: int = Field(default=14, ge=1, le=62)


class BookingOut(BaseModel):
    id: int
    start: datetime
    end: datetime
    status: str
    kind: VisitKind
    reason: str | None
    patient_id: int
    patient_name: str
    practitioner: PractitionerRef
    created_at: datetime | None
    cancelled_at: datetime | None


async def _target(
    db: AsyncSession, actor: Actor, practitioner_id: int | None, action: str,
) -> Practitioner:
    """The practitioner whose hours are read or changed, if the actor may."""
    if actor.role == Role.provider:
        user = await db.get(User, actor.user_id)
        own = user.practitioner_id if user else None
        if own is None:
            raise await refuse(db, actor, action, Conflict(
                "Your account is not linked to a practitioner on file. Ask an administrator to link it.",
                code="not_linked"), outcome="refused")
        if practitioner_id is not None and practitioner_id != own:
            raise await refuse(db, actor, action, Forbidden(), resource=f"practitioner:{practitioner_id}")
        practitioner_id = own
    elif actor.role != Role.staff:
        raise await refuse(db, actor, action, Forbidden())
    if practitioner_id is None:
        raise InvalidInput("practitioner_id", "Choose a provider.")
    practitioner = await db.get(Practitioner, practitioner_id)
    if practitioner is None or practitioner.placeholder:
        raise await refuse(db, actor, action, NotFound(), outcome="not_found",
                           resource=f"practitioner:{practitioner_id}")
    return practitioner


async def _view(
    db: AsyncSession, practitioner: Practitioner, row: ProviderAvailability | None, settings: Settings,
    now: datetime,
) -> AvailabilityOut:
    assert practitioner.id is not None
    count = len(await open_times_on_file(db, practitioner.id, now, now + timedelta(days=PREVIEW_DAYS)))
    return AvailabilityOut(
        practitioner=PractitionerRef(id=practitioner.id, name=practitioner.display_name),
        clinic_time_zone=settings.clinic_timezone,
        rules=AvailabilityRules.from_row(row) if row is not None else None,
        updated_at=as_utc(row.updated_at) if row is not None else None,
        open_next_two_weeks=count,
    )


async def _row(db: AsyncSession, practitioner_id: int) -> ProviderAvailability | None:
    return (await db.exec(
        select(ProviderAvailability).where(ProviderAvailability.practitioner_id == practitioner_id)
    )).first()


async def get_availability(
    db: AsyncSession, actor: Actor, practitioner_id: int | None, *, settings: Settings,
    now: datetime | None = None,
) -> AvailabilityOut:
    now = now or utcnow()
    practitioner = await _target(db, actor, practitioner_id, "availability.read")
    assert practitioner.id is not None
    out = await _view(db, practitioner, await _row(db, practitioner.id), settings, now)
    await record(db, actor, "availability.read", resource=f"practitioner:{practitioner.id}")
    await db.commit()
    return out


async def publish_hours(
    db: AsyncSession, practitioner_id: int, rules: AvailabilityRules, *, updated_by: int | None,
    now: datetime,
) -> ProviderAvailability:
    """Store ``rules`` as the practitioner's hours in the caller's transaction (creating
    the schedule their booked slots belong to on first use). Used by the console and
    the demo; the caller checks permission and commits."""
    row = await _row(db, practitioner_id)
    if row is None:
        schedule = Schedule(practitioner_id=practitioner_id, active=True, service=SCHEDULE_SERVICE,
                            time_zone=rules.time_zone, comment="Published in the console")
        db.add(schedule)
        await db.flush()
        assert schedule.id is not None
        row = ProviderAvailability(practitioner_id=practitioner_id, schedule_id=schedule.id,
                                   time_zone=rules.time_zone)
    stored = rules.model_dump(mode="json")
    row.visit_minutes = rules.visit_minutes
    row.time_zone = rules.time_zone
    row.weekly, row.breaks, row.days_off = stored["weekly"], stored["breaks"], stored["days_off"]
    row.published = rules.published
    row.updated_at, row.updated_by = now, updated_by
    db.add(row)
    await db.flush()
    return row


async def set_availability(
    db: AsyncSession, actor: Actor, body: AvailabilityIn, *, settings: Settings,
    now: datetime | None = None,
) -> AvailabilityOut:
    """Publish a provider's hours (see the module docstring)."""
    now = now or utcnow()
    practitioner = await _target(db, actor, body.practitioner_id, "availability.update")
    assert practitioner.id is not None
    try:
        rules = AvailabilityRules.model_validate({
            **body.model_dump(exclude={"practitioner_id", "time_zone"}),
            "time_zone": body.time_zone or settings.clinic_timezone,
        })
    except ValidationError as exc:  # rules across fields (overlapping hours on one day)
        raise InvalidInput.many(
            (".".join(str(p) for p in e["loc"]) or "weekly", str(e["msg"]).removeprefix("Value error, "))
            for e in exc.errors()
        ) from None
    row = await publish_hours(db, practitioner.id, rules, updated_by=actor.user_id, now=now)
    await record(db, actor, "availability.update", resource=f"practitioner:{practitioner.id}")
    announce(db, STAFF_CHANNEL, {"kind": "availability", "id": practitioner.id})
    out = await _view(db, practitioner, row, settings, now)
    await db.commit()
    return out


async def list_practitioners(db: AsyncSession, actor: Actor) -> list[ConsolePractitionerOut]:
    """Providers whose hours this actor may edit: their own, or (staff) everyone on file."""
    action = "availability.practitioners"
    if actor.role == Role.provider:
        user = await db.get(User, actor.user_id)
        ids = [user.practitioner_id] if user and user.practitioner_id else []
        query = select(Practitioner).where(col(Practitioner.id).in_(ids))
    elif actor.role == Role.staff:
        query = select(Practitioner).where(col(Practitioner.placeholder).is_(False),
                                           col(Practitioner.active).is_(True))
    else:
        raise await refuse(db, actor, action, Forbidden())
    rows = (await db.exec(query)).all()
    with_hours = set((await db.exec(select(ProviderAvailability.practitioner_id))).all())
    out = sorted(
        (ConsolePractitionerOut(id=p.id, name=p.display_name, specialty=p.specialty,
                                has_hours=p.id in with_hours)
         for p in rows if p.id is not None),
        key=lambda o: (not o.has_hours, o.name.lower()),
    )
    await record(db, actor, action)
    await db.commit()
    return out


async def list_bookings(
    db: AsyncSession, actor: Actor, query: ScheduleQuery, *, now: datetime | None = None,
) -> list[BookingOut]:
    """Upcoming appointments (held or cancelled) of one provider, or (staff, no id)
    of everyone, over ``days`` days; the newest change shows at once on the console."""
    now = now or utcnow()
    action = "appointment.schedule"
    if actor.role == Role.provider or query.practitioner_id is not None:
        practitioner = await _target(db, actor, query.practitioner_id, action)
        who = [practitioner.id]
    elif actor.role == Role.staff:
        who = None
    else:
        raise await refuse(db, actor, action, Forbidden())
    stmt = select(Appointment).where(
        col(Appointment.end) > now, col(Appointment.start) < now + timedelta(days=query.days),
    ).order_by(col(Appointment.start)).limit(500)
    if who is not None:
        stmt = stmt.where(col(Appointment.practitioner_id).in_(who))
    rows = (await db.exec(stmt)).all()
    patients = {p.id: p for p in (await db.exec(
        select(Patient).where(col(Patient.id).in_({a.patient_id for a in rows})))).all()}
    doctors = {p.id: p for p in (await db.exec(
        select(Practitioner).where(col(Practitioner.id).in_({a.practitioner_id for a in rows})))).all()}
    out = []
    for a in rows:
        if a.status in RELEASED_APPOINTMENT_STATUSES and a.replaced_by_id is not None:
            continue  # a reschedule: the new appointment is listed
        patient, doctor = patients.get(a.patient_id), doctors.get(a.practitioner_id)
        kind = a.kind if a.kind in set(VisitKind) else VisitKind.in_person.value
        out.append(BookingOut(
            id=a.id or 0, start=as_utc(a.start), end=as_utc(a.end), status=a.status,  # type: ignore[arg-type]
            # The reason for a visit is health data: clinicians see it, the front desk does not.
            kind=VisitKind(kind), reason=a.reason if actor.role == Role.provider else None,
            patient_id=a.patient_id,
            patient_name=patient.display_name if patient else "",
            practitioner=PractitionerRef(id=a.practitioner_id,
                                         name=doctor.display_name if doctor else ""),
            created_at=as_utc(a.created_at), cancelled_at=as_utc(a.cancelled_at),
        ))
    resource = f"practitioner:{who[0]}" if who else "practitioner:all"
    # One row per patient shown, so each patient's access history names this view.
    for patient_id in sorted({b.patient_id for b in out}):
        await record(db, actor, action, resource=resource, patient_id=patient_id)
    if not out:
        await record(db, actor, action, resource=resource)
    await db.commit()
    return out
