"""Prescription refills, the prescriber's side: the queue in the console,
approving (optionally changing quantity or refills) or denying with a reason,
and sending an approved prescription to the pharmacy.

Rules:
- Providers only: front-desk and help-desk staff, admins and patients are
  refused (403, audited as ``denied``).
- A provider reaches a request assigned to them (they prescribed it, or are
  the patient's primary provider), or any request of a patient whose chart they
  may read (care team, or a cross-cover reason they typed:
  ``portal.records.access``); otherwise 403 ``cross_cover_required``. An id
  that does not exist answers 404. Every refusal is audited.
- The queue shows requests assigned to the provider, unassigned requests of
  patients in their care, and those of patients they cover; one audit row per
  patient shown.
- Deciding is a conditional update (``requested`` → ``approved``/``denied``):
  two providers deciding at once give one decision and one 409
  ``already_decided``. The decision commits before anything is sent.
- Approval then hands the prescription to the sender (``pharmacy.sender``; the
  default writes to an outbox folder, a mock of the pharmacy network). Taken:
  ``sent``, with its time. Not taken: it stays ``approved``, the failure is
  recorded (its kind only) and the provider can send it again.
- After every change the patient and the queue hear ``refill``/``refill_queue``
  events after commit, and the patient gets a notice without health data
  when the request is denied or sent.

Services commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.actor import Actor
from rtc_server.auth.models import User
from rtc_server.config import Settings
from rtc_server.db import as_utc
from rtc_server.errors import NotFound
from rtc_server.pharmacy.directory import pharmacy_out
from rtc_server.pharmacy.models import Pharmacy
from rtc_server.pharmacy.sender import Prescription, PrescriptionSender
from rtc_server.portal.records.access import (
    CrossCoverRequired,
    care_team_clause,
    grant_clause,
    in_care_team,
    live_grant,
    practitioner_of,
    require_clinician,
)
from rtc_server.portal.refills.models import OPEN_STATUSES, RefillRequest, RefillStatus
from rtc_server.portal.refills.service import NotDecidable, record, refuse
from rtc_server.portal.refills.shapes import ApproveIn, DenyIn, PatientRef, QueueItemOut, QueueQuery
from rtc_server.portal.refills.views import announce_change, notify_patient, pharmacies_by_id
from rtc_server.records.models import Medication, Patient, Practitioner

log = logging.getLogger("rtc_server.refills")

DONE_DAYS = 30
QUEUE_LIMIT = 200


def _name(p: Patient) -> str:
    return " ".join(x for x in (p.given_name, p.middle_name, p.family_name) if x)


# --- reach --------------------------------------------------------------------------------

async def _reachable(db: AsyncSession, actor: Actor, request_id: int, action: str,
                     now: datetime) -> tuple[RefillRequest, int | None]:
    """The request if ``actor`` may act on it, and the actor's practitioner id; refuses otherwise."""
    resource = f"refill:{request_id}"
    require_clinician(actor, action, resource)
    row = await db.get(RefillRequest, request_id)
    if row is None:
        raise actor.deny(NotFound(), action=action, resource=resource)
    mine = await practitioner_of(db, actor)
    if mine is not None and row.practitioner_id == mine:
        return row, mine
    if await in_care_team(db, mine, row.patient_id):
        return row, mine
    grant = await live_grant(db, actor.user_id, row.patient_id, now)
    actor.require(grant is not None, action=action, resource=resource, patient_id=row.patient_id,
                  error=CrossCoverRequired())
    return row, mine


# --- shaping ------------------------------------------------------------------------------

async def _items(db: AsyncSession, rows: Sequence[RefillRequest], mine: int | None) -> list[QueueItemOut]:
    if not rows:
        return []
    patients = {p.id: p for p in (await db.exec(
        select(Patient).where(col(Patient.id).in_({r.patient_id for r in rows})))).all()}
    meds = {m.id: m for m in (await db.exec(
        select(Medication).where(col(Medication.id).in_({r.medication_id for r in rows})))).all()}
    pharmacies = await pharmacies_by_id(db, [r.pharmacy_id for r in rows])
    decider_ids = {r.decided_by for r in rows if r.decided_by is not None}
    deciders = {u.id: u for u in (await db.exec(select(User).where(col(User.id).in_(decider_ids)))).all()}
    out = []
    for r in rows:
        p = patients[r.patient_id]
        med = meds.get(r.medication_id)
        decider = deciders.get(r.decided_by) if r.decided_by is not None else None
        out.append(QueueItemOut(
            id=r.id or 0,
            patient=PatientRef(id=p.id or 0, name=_name(p), birth_date=p.birth_date, mrn=p.mrn),
            medication_id=r.medication_id, medication_name=r.medication_name, dosage=r.dosage,
            refills_on_file=med.refills_allowed if med else None,
            prescribed_at=as_utc(med.authored_at) if med else None,
            pharmacy=pharmacy_out(pharmacies[r.pharmacy_id]), note=r.note, status=RefillStatus(r.status),
            assigned_to_you=mine is not None and r.practitioner_id == mine,
            quantity=r.quantity, refills=r.refills, decision_note=r.decision_note,
            decided_by=(decider.display_name or decider.username) if decider else None,
            requested_at=as_utc(r.requested_at),  # type: ignore[arg-type]
            decided_at=as_utc(r.decided_at), sent_at=as_utc(r.sent_at), send_attempts=r.send_attempts,
            send_failed=r.status == RefillStatus.approved and r.send_error is not None,
        ))
    return out


# --- reading ------------------------------------------------------------------------------

async def list_queue(
    db: AsyncSession, actor: Actor, query: QueueQuery, *, now: datetime,
) -> list[QueueItemOut]:
    """The provider's refill queue: open requests oldest first, or those decided in
    the last ``DONE_DAYS`` days newest first."""
    action = "refill.queue"
    require_clinician(actor, action)
    mine = await practitioner_of(db, actor)
    reach = [grant_clause(actor.user_id, RefillRequest.patient_id, now)]
    if mine is not None:
        reach += [
            col(RefillRequest.practitioner_id) == mine,
            and_(col(RefillRequest.practitioner_id).is_(None),
                 care_team_clause(mine, RefillRequest.patient_id)),  # type: ignore[arg-type]
        ]
    stmt = select(RefillRequest).where(or_(*reach))  # type: ignore[arg-type]
    if query.status == "open":
        stmt = stmt.where(col(RefillRequest.status).in_(OPEN_STATUSES)).order_by(
            col(RefillRequest.requested_at), col(RefillRequest.id))
    else:
        since = now - timedelta(days=DONE_DAYS)
        stmt = stmt.where(
            col(RefillRequest.status).not_in(OPEN_STATUSES),
            or_(col(RefillRequest.decided_at) >= since, col(RefillRequest.cancelled_at) >= since),
        ).order_by(col(RefillRequest.requested_at).desc(), col(RefillRequest.id).desc())
    rows = (await db.exec(stmt.limit(QUEUE_LIMIT))).all()
    out = await _items(db, rows, mine)
    shown = sorted({r.patient_id for r in rows})
    for patient_id in shown:
        await record(db, actor, action, resource=f"patient:{patient_id}", patient_id=patient_id)
    if not shown:
        await record(db, actor, action)
    await db.commit()
    return out


async def get_item(db: AsyncSession, actor: Actor, request_id: int, *, now: datetime) -> QueueItemOut:
    action = "refill.review"
    row, mine = await _reachable(db, actor, request_id, action, now)
    [out] = await _items(db, [row], mine)
    await record(db, actor, action, resource=f"refill:{request_id}", patient_id=row.patient_id)
    await db.commit()
    return out


# --- deciding -----------------------------------------------------------------------------

async def _decide(db: AsyncSession, actor: Actor, row: RefillRequest, action: str, status: RefillStatus,
                  now: datetime, **values: object) -> None:
    result = await db.exec(  # type: ignore[call-overload]
        update(RefillRequest)
        .where(col(RefillRequest.id) == row.id, col(RefillRequest.status) == RefillStatus.requested.value)
        .values(status=status.value, decided_by=actor.user_id, decided_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise await refuse(db, actor, action, NotDecidable(), outcome="conflict",
                           resource=f"refill:{row.id}", patient_id=row.patient_id)
    await db.refresh(row)
    await record(db, actor, action, resource=f"refill:{row.id}", patient_id=row.patient_id)
    await announce_change(db, row)


async def approve(
    db: AsyncSession, actor: Actor, request_id: int, body: ApproveIn, *, settings: Settings,
    sender: PrescriptionSender, now: datetime,
) -> QueueItemOut:
    """Approve (committed), then send to the pharmacy; the answer says whether it was taken."""
    action = "refill.approve"
    row, mine = await _reachable(db, actor, request_id, action, now)
    await _decide(db, actor, row, action, RefillStatus.approved, now,
                  quantity=body.quantity, refills=body.refills, decision_note=body.note)
    await db.commit()
    await _send(db, actor, row, settings=settings, sender=sender, now=now)
    [out] = await _items(db, [row], mine)
    await db.commit()
    return out


async def deny(db: AsyncSession, actor: Actor, request_id: int, body: DenyIn, *, settings: Settings,
               now: datetime) -> QueueItemOut:
    """Deny with a reason the patient reads."""
    action = "refill.deny"
    row, mine = await _reachable(db, actor, request_id, action, now)
    await _decide(db, actor, row, action, RefillStatus.denied, now, decision_note=body.reason)
    await notify_patient(db, settings, row)
    [out] = await _items(db, [row], mine)
    await db.commit()
    return out


async def send_again(db: AsyncSession, actor: Actor, request_id: int, *, settings: Settings,
                     sender: PrescriptionSender, now: datetime) -> QueueItemOut:
    """Send an approved prescription the network did not take (409 ``not_approved`` otherwise)."""
    action = "refill.send"
    row, mine = await _reachable(db, actor, request_id, action, now)
    if row.status != RefillStatus.approved:
        raise await refuse(db, actor, action, NotDecidable("Only an approved request waits to be sent.",
                                                           code="not_approved"),
                           outcome="conflict", resource=f"refill:{request_id}", patient_id=row.patient_id)
    await db.commit()
    await _send(db, actor, row, settings=settings, sender=sender, now=now)
    [out] = await _items(db, [row], mine)
    await db.commit()
    return out


# --- sending ------------------------------------------------------------------------------

async def _prescription(db: AsyncSession, actor: Actor, row: RefillRequest, now: datetime) -> Prescription:
    patient = await db.get(Patient, row.patient_id)
    pharmacy = await db.get(Pharmacy, row.pharmacy_id)
    med = await db.get(Medication, row.medication_id)
    assert patient is not None and pharmacy is not None
    mine = await practitioner_of(db, actor)
    doc = await db.get(Practitioner, mine) if mine is not None else None
    user = await db.get(User, actor.user_id)
    return Prescription(
        message_id=f"refill-{row.id}",
        written_at=now.isoformat(),
        pharmacy={"name": pharmacy.name, "ncpdp_id": pharmacy.ncpdp_id, "phone": pharmacy.phone,
                  "fax": pharmacy.fax, "address": {"line": pharmacy.address_line, "city": pharmacy.city,
                                                   "state": pharmacy.state, "zip": pharmacy.zip}},
        patient={"name": _name(patient), "birth_date": patient.birth_date.isoformat(),
                 "gender": patient.gender, "phone": patient.phone, "mrn": patient.mrn,
                 "address": {"line": patient.address_line, "city": patient.city, "state": patient.state,
                             "zip": patient.zip}},
        prescriber={"name": doc.display_name if doc else (user.display_name if user else actor.username),
                    "npi": doc.npi if doc else None, "phone": doc.phone if doc else None},
        medication={"name": row.medication_name, "dosage": row.dosage,
                    "code": med.code if med else None, "code_system": med.code_system if med else None},
        quantity=row.quantity, refills=row.refills, note=row.decision_note,
    )


async def _send(db: AsyncSession, actor: Actor, row: RefillRequest, *, settings: Settings,
                sender: PrescriptionSender, now: datetime) -> None:
    """Hand an approved request to ``sender`` and record the outcome (committed)."""
    prescription = await _prescription(db, actor, row, now)
    await db.commit()  # no transaction stays open while the network is asked
    resource = f"refill:{row.id}"
    try:
        await sender.send(prescription)
    except Exception as exc:  # any failure of the outside world: keep it approved, say so
        error = type(exc).__name__[:64]
        log.warning("could not send refill %s to the pharmacy: %s", row.id, error)
        await db.exec(  # type: ignore[call-overload]
            update(RefillRequest).where(col(RefillRequest.id) == row.id)
            .values(send_attempts=RefillRequest.send_attempts + 1, send_error=error)
            .execution_options(synchronize_session=False))
        await record(db, actor, "refill.send", outcome="failed", resource=resource, patient_id=row.patient_id)
        await db.refresh(row)
        await announce_change(db, row)
        await db.commit()
        return
    sent_at = max(now, as_utc(row.decided_at) or now)
    result = await db.exec(  # type: ignore[call-overload]
        update(RefillRequest)
        .where(col(RefillRequest.id) == row.id, col(RefillRequest.status) == RefillStatus.approved.value)
        .values(status=RefillStatus.sent.value, sent_at=sent_at,
                send_attempts=RefillRequest.send_attempts + 1, send_error=None)
        .execution_options(synchronize_session=False))
    await db.refresh(row)
    if result.rowcount == 1:
        await record(db, actor, "refill.send", resource=resource, patient_id=row.patient_id)
        await announce_change(db, row)
        await notify_patient(db, settings, row)
    await db.commit()
