"""Turning refill rows into what the patient and the console read, and telling
people that something changed (ids only; mail and texts say only that there is
an update)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import Role, User, UserStatus
from rtc_server.config import Settings
from rtc_server.db import after_commit, as_utc
from rtc_server.notify.events import announce, user_channel
from rtc_server.notify.mail import compose
from rtc_server.notify.outbox import queue_mail
from rtc_server.pharmacy.directory import pharmacy_out
from rtc_server.pharmacy.models import Pharmacy
from rtc_server.portal.refills.models import RefillRequest, RefillStatus
from rtc_server.portal.refills.shapes import RefillOut, StatusStep
from rtc_server.records.models import Patient, Practitioner

log = logging.getLogger("rtc_server.refills")

#: Events: the patient's pages and the prescriber's queue refetch on these.
PATIENT_EVENT = "refill"
QUEUE_EVENT = "refill_queue"
NOTICE_KIND = "refill_update"


def _at(value: datetime | None) -> datetime | None:
    return as_utc(value)


def steps_of(row: RefillRequest) -> list[StatusStep]:
    """The request's history, oldest first: requested, then approved and sent, or denied, or cancelled."""
    steps = [StatusStep(status=RefillStatus.requested, at=_at(row.requested_at))]  # type: ignore[arg-type]
    decided = _at(row.decided_at)
    if row.status in (RefillStatus.approved, RefillStatus.sent) and decided is not None:
        steps.append(StatusStep(status=RefillStatus.approved, at=decided))
    if row.status == RefillStatus.sent and row.sent_at is not None:
        steps.append(StatusStep(status=RefillStatus.sent, at=_at(row.sent_at)))  # type: ignore[arg-type]
    if row.status == RefillStatus.denied and decided is not None:
        steps.append(StatusStep(status=RefillStatus.denied, at=decided))
    if row.status == RefillStatus.cancelled and row.cancelled_at is not None:
        steps.append(StatusStep(status=RefillStatus.cancelled, at=_at(row.cancelled_at)))  # type: ignore[arg-type]
    return steps


async def pharmacies_by_id(db: AsyncSession, ids: Iterable[int]) -> dict[int, Pharmacy]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = (await db.exec(select(Pharmacy).where(col(Pharmacy.id).in_(wanted)))).all()
    return {r.id: r for r in rows if r.id is not None}


async def practitioners_by_id(db: AsyncSession, ids: Iterable[int | None]) -> dict[int, Practitioner]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = (await db.exec(select(Practitioner).where(col(Practitioner.id).in_(wanted)))).all()
    return {r.id: r for r in rows if r.id is not None}


def refill_out(row: RefillRequest, pharmacy: Pharmacy, provider: Practitioner | None) -> RefillOut:
    assert row.id is not None
    return RefillOut(
        id=row.id, medication_id=row.medication_id, medication_name=row.medication_name, dosage=row.dosage,
        pharmacy=pharmacy_out(pharmacy), note=row.note, status=RefillStatus(row.status),
        provider=provider.display_name if provider else None, quantity=row.quantity, refills=row.refills,
        decision_note=row.decision_note, requested_at=_at(row.requested_at),  # type: ignore[arg-type]
        decided_at=_at(row.decided_at), sent_at=_at(row.sent_at), cancelled_at=_at(row.cancelled_at),
        steps=steps_of(row),
    )


async def refills_out(db: AsyncSession, rows: Sequence[RefillRequest]) -> list[RefillOut]:
    pharmacies = await pharmacies_by_id(db, [r.pharmacy_id for r in rows])
    providers = await practitioners_by_id(db, [r.practitioner_id for r in rows])
    return [refill_out(r, pharmacies[r.pharmacy_id], providers.get(r.practitioner_id or 0)) for r in rows]


# --- who hears about it ------------------------------------------------------------------

async def patient_users(db: AsyncSession, patient_id: int) -> list[User]:
    return list((await db.exec(select(User).where(col(User.patient_id) == patient_id,
                                                  col(User.status) == UserStatus.active))).all())


async def care_team_of(db: AsyncSession, patient_id: int) -> set[int]:
    """The practitioners in whose care the patient is (``portal.records.access``'s rule:
    their primary practitioner, those who saw them, those they booked)."""
    from rtc_server.records.models import RELEASED_APPOINTMENT_STATUSES, Appointment, Encounter

    patient = await db.get(Patient, patient_id)
    team = {patient.primary_practitioner_id} if patient is not None else set()
    team |= set((await db.exec(select(Encounter.practitioner_id).where(
        col(Encounter.patient_id) == patient_id).distinct())).all())
    team |= set((await db.exec(select(Appointment.practitioner_id).where(
        col(Appointment.patient_id) == patient_id,
        col(Appointment.status).not_in(RELEASED_APPOINTMENT_STATUSES)).distinct())).all())
    return {p for p in team if p is not None}


async def queue_users(db: AsyncSession, row: RefillRequest) -> list[int]:
    """The accounts whose queue shows ``row``: the assigned provider's, or, for a
    request no provider is assigned to, the providers of the patient's care team."""
    if row.practitioner_id is not None:
        wanted = {row.practitioner_id}
    else:
        wanted = await care_team_of(db, row.patient_id)
    if not wanted:
        return []
    query = select(User.id).where(col(User.role) == Role.provider, col(User.status) == UserStatus.active,
                                  col(User.practitioner_id).in_(wanted))
    return [u for u in (await db.exec(query)).all() if u is not None]


async def announce_change(db: AsyncSession, row: RefillRequest) -> None:
    """``{"kind": "refill", "id"}`` to the patient and ``{"kind": "refill_queue", "id"}``
    to the queue's providers, after commit."""
    for user in await patient_users(db, row.patient_id):
        announce(db, user_channel(user.id or 0), {"kind": PATIENT_EVENT, "id": row.id})
    for user_id in await queue_users(db, row):
        announce(db, user_channel(user_id), {"kind": QUEUE_EVENT, "id": row.id})


async def notify_patient(db: AsyncSession, settings: Settings, row: RefillRequest) -> None:
    """Email and/or text the patient (their ``refill_updates`` choice) that there is an
    update in the portal: no medication, pharmacy or decision in it."""
    from rtc_server.portal.account.service import notifications_of

    link = f"{settings.base_url}/app/refills.html"
    line = "There is an update on your request in the portal."
    for user in await patient_users(db, row.patient_id):
        prefs = notifications_of(user).get("refill_updates", {})
        if prefs.get("email") and user.email:
            first = user.display_name.split(" ")[0] if user.display_name else None
            queue_mail(db, compose(
                NOTICE_KIND, user.email, f"{settings.clinic_name}: there is an update on your request",
                settings.clinic_name, first, [line, "Sign in to the patient portal to see it."],
                action=("Open the patient portal", link),
            ))
        phone = user.phone
        if phone is None:
            patient = await db.get(Patient, row.patient_id)
            phone = patient.phone if patient else None
        if prefs.get("sms") and phone:
            _text_after_commit(db, settings, phone, f"{settings.clinic_name}: {line} {link}")


def _text_after_commit(db: AsyncSession, settings: Settings, phone: str, text: str) -> None:
    from rtc_server.portal.appointments.sms import OutboxSmsSender

    sender = OutboxSmsSender(settings.outbox_dir)

    async def send() -> None:
        try:
            await sender.send(phone, text, kind=NOTICE_KIND)
        except Exception as exc:  # the decision stands; the portal shows it
            log.warning("could not send a refill-update text: %s", type(exc).__name__)

    after_commit(db, send)
