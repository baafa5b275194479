"""Prescription refills, the patient's side: the active medication list, asking
for a refill, following it, and withdrawing it before a decision.

Rules every function keeps:
- Only a signed-in patient uses these (anyone else: 403, audited). A patient
  reaches only their own medications and requests: another patient's id
  answers 404, the same as an id that does not exist, and is audited as
  ``denied``.
- A refill is asked for a medication on the patient's active list, to a
  pharmacy of the directory. Controlled substances (``controlled``) are
  refused with the office's phone number: they are arranged by phone.
- One open request per medication: the database's partial unique index
  decides, so a double click or two tabs give one request and one 409
  ``already_requested`` naming it. With an ``Idempotency-Key`` a retry gets the
  first answer back instead (``portal.appointments.idempotency``: same key and
  same body replays, same key and another body is 422).
- The request goes to the prescriber's queue (else the patient's primary
  provider's); the patient and that queue are told after commit (ids only).
- Every read and change is audited in its own transaction's audit row, and so
  is every refusal.

Services commit their own transaction. Times are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.config import Settings
from rtc_server.db import utcnow
from rtc_server.errors import Conflict, DomainError, InvalidInput, NotFound
from rtc_server.pharmacy.directory import active_pharmacy, pharmacy_out, preferred_of, remember_preferred_in
from rtc_server.portal.appointments import idempotency
from rtc_server.portal.refills.controlled import controlled_list
from rtc_server.portal.refills.models import OPEN_STATUSES, RefillRequest, RefillStatus
from rtc_server.portal.refills.shapes import MedicationChoice, RefillIn, RefillOut, RefillsOut
from rtc_server.portal.refills.views import announce_change, refill_out, refills_out
from rtc_server.records.models import Medication, Patient, Practitioner

ACTIVE = "active"
#: The request list shows this many, newest first.
LIST_LIMIT = 50


class ControlledSubstance(Conflict):
    code = "controlled_substance"


class AlreadyRequested(Conflict):
    code = "already_requested"

    def __init__(self, request_id: int | None) -> None:
        super().__init__("A refill of this medication is already waiting. You can follow it on this page.")
        self.request_id = request_id


class NotDecidable(Conflict):
    code = "already_decided"
    message = "This request has already been decided."


def clinic_phone(settings: Settings) -> str | None:
    return getattr(settings, "clinic_phone", None) or None


def _call_office(settings: Settings) -> str:
    phone = clinic_phone(settings)
    return f"please call the office at {phone}" if phone else "please call the office"


async def record(db: AsyncSession, actor: Actor, action: str, *, outcome: str = "success",
                 resource: str | None = None, patient_id: int | None = None) -> None:
    await audit.record(
        db, action=action, outcome=outcome, actor_id=actor.user_id, actor_role=str(actor.role),
        patient_id=patient_id, resource=resource, request_id=actor.meta.request_id, ip=actor.meta.ip,
    )


async def refuse(db: AsyncSession, actor: Actor, action: str, exc: DomainError, *, outcome: str,
                 resource: str | None = None, patient_id: int | None = None) -> DomainError:
    """Undo the transaction, audit the refusal on its own and return ``exc`` to raise."""
    await db.rollback()
    await record(db, actor, action, outcome=outcome, resource=resource, patient_id=patient_id)
    await db.commit()
    return exc


def own_patient(actor: Actor, action: str) -> int:
    """The caller's patient id; anyone who is not a patient is refused (403, audited)."""
    actor.require(actor.is_patient and actor.patient_id is not None, action=action)
    assert actor.patient_id is not None
    return actor.patient_id


def _not_yours(actor: Actor, action: str, resource: str, patient_id: int) -> DomainError:
    """404, audited as ``denied``: the same answer as an id that does not exist."""
    return actor.deny(NotFound(), action=action, resource=resource, patient_id=patient_id)


async def _own_medication(db: AsyncSession, actor: Actor, patient_id: int, medication_id: int,
                          action: str) -> Medication:
    med = await db.get(Medication, medication_id)
    if med is None or med.patient_id != patient_id:
        raise _not_yours(actor, action, f"medication:{medication_id}", patient_id)
    return med


async def _own_request(db: AsyncSession, actor: Actor, patient_id: int, request_id: int,
                       action: str) -> RefillRequest:
    row = await db.get(RefillRequest, request_id)
    if row is None or row.patient_id != patient_id:
        raise _not_yours(actor, action, f"refill:{request_id}", patient_id)
    return row


async def _open_requests(db: AsyncSession, patient_id: int) -> dict[int, int]:
    """medication id → its open request's id."""
    rows = (await db.exec(select(RefillRequest.medication_id, RefillRequest.id).where(
        col(RefillRequest.patient_id) == patient_id, col(RefillRequest.status).in_(OPEN_STATUSES)))).all()
    return {m: r for m, r in rows if r is not None}


async def open_request_count(db: AsyncSession, patient_id: int) -> int:
    """How many of the patient's requests wait for a decision or for the pharmacy
    (for the dashboard; the caller audits its own read)."""
    return len(await _open_requests(db, patient_id))


# --- reading ------------------------------------------------------------------------------

async def active_medications(db: AsyncSession, patient_id: int) -> list[Medication]:
    return list((await db.exec(
        select(Medication).where(col(Medication.patient_id) == patient_id, col(Medication.status) == ACTIVE)
        .order_by(col(Medication.display), col(Medication.id))
    )).all())


async def refill_page(db: AsyncSession, actor: Actor, *, settings: Settings) -> RefillsOut:
    """The patient's active medications (which can be requested online), their
    requests (newest first) and their preferred pharmacy."""
    action = "refill.list"
    patient_id = own_patient(actor, action)
    meds = await active_medications(db, patient_id)
    controlled = await controlled_list(db)
    open_by_med = await _open_requests(db, patient_id)
    prescribers = {
        p.id: p for p in (await db.exec(select(Practitioner).where(
            col(Practitioner.id).in_({m.prescriber_id for m in meds if m.prescriber_id is not None})))).all()
    } if meds else {}
    choices = [
        MedicationChoice(
            id=m.id or 0, name=m.display, dosage=m.dosage,
            prescriber=prescribers[m.prescriber_id].display_name if m.prescriber_id in prescribers else None,
            controlled=controlled.covers(m), open_request_id=open_by_med.get(m.id or 0),
        )
        for m in meds
    ]
    rows = (await db.exec(
        select(RefillRequest).where(col(RefillRequest.patient_id) == patient_id)
        .order_by(col(RefillRequest.requested_at).desc(), col(RefillRequest.id).desc()).limit(LIST_LIMIT)
    )).all()
    preferred = await preferred_of(db, patient_id)
    out = RefillsOut(
        medications=choices, requests=await refills_out(db, rows),
        preferred_pharmacy=pharmacy_out(preferred) if preferred is not None else None,
        clinic_name=settings.clinic_name, clinic_phone=clinic_phone(settings),
    )
    await record(db, actor, action, patient_id=patient_id)
    await db.commit()
    return out


async def get_request(db: AsyncSession, actor: Actor, request_id: int) -> RefillOut:
    action = "refill.read"
    patient_id = own_patient(actor, action)
    row = await _own_request(db, actor, patient_id, request_id, action)
    [out] = await refills_out(db, [row])
    await record(db, actor, action, resource=f"refill:{request_id}", patient_id=patient_id)
    await db.commit()
    return out


# --- asking -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Requested:
    refill: RefillOut
    status_code: int = 201
    replayed: bool = False


async def _assigned_practitioner(db: AsyncSession, med: Medication, patient_id: int) -> int | None:
    """The prescriber while they are an active clinician on file, else the primary provider."""
    if med.prescriber_id is not None:
        p = await db.get(Practitioner, med.prescriber_id)
        if p is not None and p.active and not p.placeholder:
            return p.id
    patient = await db.get(Patient, patient_id)
    return patient.primary_practitioner_id if patient is not None else None


async def _replay(
    db: AsyncSession, actor: Actor, key: str | None, digest: str, now: datetime,
) -> Requested | None:
    if key is None:
        return None
    prior = await idempotency.find(db, actor.user_id, key, digest, now)
    if prior is None:
        return None
    return Requested(RefillOut.model_validate(prior.response), prior.status_code, True)


async def request_refill(
    db: AsyncSession, actor: Actor, body: RefillIn, *, settings: Settings,
    idempotency_key: str | None = None, now: datetime | None = None,
) -> Requested:
    """Ask for a refill (201); a retry with the same ``idempotency_key`` gets the
    first answer back (see the module docstring for the refusals)."""
    now = now or utcnow()
    action = "refill.request"
    patient_id = own_patient(actor, action)
    key = idempotency.check_key(idempotency_key)
    digest = idempotency.request_hash("refill", body.model_dump(mode="json"))
    replay = await _replay(db, actor, key, digest, now)
    if replay is not None:
        await record(db, actor, f"{action}.replay", resource=f"refill:{replay.refill.id}",
                     patient_id=patient_id)
        await db.commit()
        return replay

    med = await _own_medication(db, actor, patient_id, body.medication_id, action)
    med_id = body.medication_id
    resource = f"medication:{med_id}"
    if med.status != ACTIVE:
        raise await refuse(db, actor, action, InvalidInput(
            "medication_id", "This medication is not on your active list. Ask your care team about it."),
            outcome="refused", resource=resource, patient_id=patient_id)
    if (await controlled_list(db)).covers(med):
        raise await refuse(db, actor, action, ControlledSubstance(
            f"This medication is a controlled substance, so it can't be refilled online: "
            f"{_call_office(settings)}."), outcome="refused", resource=resource, patient_id=patient_id)
    pharmacy = await active_pharmacy(db, body.pharmacy_id)
    if pharmacy is None:
        raise await refuse(db, actor, action, InvalidInput(
            "pharmacy_id", "Choose a pharmacy from the directory."),
            outcome="refused", resource=f"pharmacy:{body.pharmacy_id}", patient_id=patient_id)
    practitioner_id = await _assigned_practitioner(db, med, patient_id)

    key_row = None
    if key is not None:
        key_row = idempotency.remember(db, actor.user_id, key, digest, now)
        try:
            await db.flush()
        except IntegrityError:  # the same key is in flight: answer as it did
            await db.rollback()
            replay = await _replay(db, actor, key, digest, now)
            if replay is None:  # pragma: no cover - the first attempt failed; the client may retry
                raise Conflict("The same request is being processed. Try again.",
                               code="idempotency_in_progress") from None
            return replay
    row = RefillRequest(
        patient_id=patient_id, medication_id=med_id, practitioner_id=practitioner_id,
        pharmacy_id=body.pharmacy_id, requested_by=actor.user_id, medication_name=med.display[:300],
        dosage=med.dosage[:500] if med.dosage else None, note=body.note,
        status=RefillStatus.requested.value, requested_at=now,
    )
    db.add(row)
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        open_id = (await _open_requests(db, patient_id)).get(med_id)
        raise await refuse(db, actor, action, AlreadyRequested(open_id), outcome="conflict",
                           resource=resource, patient_id=patient_id) from None
    if body.remember_pharmacy:
        await remember_preferred_in(db, patient_id, body.pharmacy_id, now)
    await record(db, actor, action, resource=f"refill:{row.id}", patient_id=patient_id)
    await announce_change(db, row)
    provider = await db.get(Practitioner, practitioner_id) if practitioner_id is not None else None
    out = refill_out(row, pharmacy, provider)
    if key_row is not None:
        key_row.status_code = 201
        key_row.response = out.model_dump(mode="json")
        db.add(key_row)
    await db.commit()
    return Requested(out)


async def cancel_request(db: AsyncSession, actor: Actor, request_id: int, *,
                         now: datetime | None = None) -> RefillOut:
    """Withdraw a request the provider has not decided yet (409 ``already_decided`` after)."""
    now = now or utcnow()
    action = "refill.cancel"
    patient_id = own_patient(actor, action)
    row = await _own_request(db, actor, patient_id, request_id, action)
    result = await db.exec(  # type: ignore[call-overload]
        update(RefillRequest)
        .where(col(RefillRequest.id) == request_id, col(RefillRequest.status) == RefillStatus.requested.value)
        .values(status=RefillStatus.cancelled.value, cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise await refuse(db, actor, action, NotDecidable(), outcome="conflict",
                           resource=f"refill:{request_id}", patient_id=patient_id)
    await db.refresh(row)
    await record(db, actor, action, resource=f"refill:{request_id}", patient_id=patient_id)
    await announce_change(db, row)
    [out] = await refills_out(db, [row])
    await db.commit()
    return out
