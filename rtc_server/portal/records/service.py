"""The record on file, for the patient (Medical Records tab, FHIR export) and for
a clinician (the console's chart view).

Diagnoses are split into active and resolved, medications into active and past;
lab results come from ``portal.labs`` (released only on the patient's side).
The FHIR export is the importer-compatible Bundle of ``fhir.export`` minus held
lab results (and any report that groups one): a held result reaches the patient
through no path, the download included.

Reads are audited (``records.read``, ``records.export``, ``chart.read``);
refusals are audited as ``denied`` by the transport. Services commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.actor import Actor
from rtc_server.db import as_utc
from rtc_server.errors import NotFound
from rtc_server.fhir.export import build_bundle, read_record
from rtc_server.portal.labs.models import LabRelease, LabState
from rtc_server.portal.labs.release import LAB_CATEGORY, triage
from rtc_server.portal.labs.service import chart_labs, held_tests
from rtc_server.portal.records.access import (
    ChartOpen,
    grant_cross_cover,
    open_chart,
    own_patient,
    record,
    require_clinician,
)
from rtc_server.portal.records.shapes import (
    ActivityOut,
    AllergyOut,
    CarePlanOut,
    ChartOut,
    ConditionOut,
    ConditionsOut,
    CrossCoverIn,
    CrossCoverOut,
    ImmunizationOut,
    MedicationOut,
    MedicationsOut,
    PatientSummary,
    RecordsOut,
    VisitOut,
)
from rtc_server.records.models import (
    AllergyIntolerance,
    CarePlan,
    Condition,
    Encounter,
    Immunization,
    Medication,
    Patient,
    Practitioner,
)

RESOLVED = {"resolved", "inactive", "remission"}
ACTIVE_MEDICATION = {"active", "on-hold", "intended"}
VIRTUAL_CLASSES = {"VR"}
#: Past visits shown (latest first).
VISITS_LIMIT = 200


def _rows(db: AsyncSession, table: Any, patient_id: int, order: Any) -> Any:
    return db.exec(select(table).where(table.patient_id == patient_id).order_by(order, table.id))


async def read_records(db: AsyncSession, patient_id: int, *, now: datetime) -> RecordsOut:
    """Everything but labs, as shown (no audit, no commit: the caller's job)."""
    patient = await db.get(Patient, patient_id)
    if patient is None:
        raise NotFound()
    conditions = (await _rows(db, Condition, patient_id, col(Condition.onset_at).desc())).all()
    medications = (await _rows(db, Medication, patient_id, col(Medication.authored_at).desc())).all()
    allergies = (await _rows(db, AllergyIntolerance, patient_id, col(AllergyIntolerance.recorded_at))).all()
    shots = (await _rows(db, Immunization, patient_id, col(Immunization.occurred_at).desc())).all()
    plans = (await _rows(db, CarePlan, patient_id, col(CarePlan.start).desc())).all()
    visits = (await db.exec(
        select(Encounter).where(col(Encounter.patient_id) == patient_id)
        .where((col(Encounter.start).is_(None)) | (col(Encounter.start) <= now))
        .order_by(col(Encounter.start).desc(), col(Encounter.id).desc()).limit(VISITS_LIMIT)
    )).all()
    wanted = {m.prescriber_id for m in medications} | {v.practitioner_id for v in visits}
    wanted.discard(None)
    names = {p.id: p.display_name for p in (await db.exec(
        select(Practitioner).where(col(Practitioner.id).in_(wanted)))).all()} if wanted else {}

    def condition(c: Condition) -> ConditionOut:
        return ConditionOut(id=c.id or 0, display=c.display or c.code or "Condition", code=c.code,
                            clinical_status=c.clinical_status, onset_at=as_utc(c.onset_at),
                            resolved_at=as_utc(c.abatement_at))

    def medication(m: Medication) -> MedicationOut:
        return MedicationOut(id=m.id or 0, display=m.display or m.code or "Medication", dosage=m.dosage,
                             status=m.status, reason=m.reason,
                             prescriber=names.get(m.prescriber_id) if m.prescriber_id else None,
                             authored_at=as_utc(m.authored_at), refills_allowed=m.refills_allowed)

    return RecordsOut(
        patient=PatientSummary(id=patient_id, name=patient.display_name, birth_date=patient.birth_date,
                               gender=patient.gender, mrn=patient.mrn),
        conditions=ConditionsOut(
            active=[condition(c) for c in conditions if (c.clinical_status or "active") not in RESOLVED],
            resolved=[condition(c) for c in conditions if (c.clinical_status or "active") in RESOLVED],
        ),
        medications=MedicationsOut(
            active=[medication(m) for m in medications if (m.status or "active") in ACTIVE_MEDICATION],
            past=[medication(m) for m in medications if (m.status or "active") not in ACTIVE_MEDICATION],
        ),
        allergies=[AllergyOut(
            id=a.id or 0, display=a.display or a.code or "Allergy", category=a.category,
            criticality=a.criticality, clinical_status=a.clinical_status,
            reactions=[str(r.get("manifestation")) for r in a.reactions if r.get("manifestation")],
            recorded_at=as_utc(a.recorded_at)) for a in allergies],
        immunizations=[ImmunizationOut(id=i.id or 0, display=i.display or i.code or "Immunization",
                                       occurred_at=as_utc(i.occurred_at), status=i.status) for i in shots],
        care_plans=[CarePlanOut(
            id=p.id or 0, title=p.title or "Care plan", status=p.status, description=p.description,
            addresses=p.addresses, start=as_utc(p.start), end=as_utc(p.end),
            activities=[ActivityOut(display=str(a.get("display") or a.get("code") or "Activity"),
                                    status=a.get("status")) for a in p.activities]) for p in plans],
        visits=[VisitOut(
            id=v.id or 0, start=as_utc(v.start), end=as_utc(v.end), type=v.type_display,
            reason=v.reason, practitioner=names.get(v.practitioner_id) if v.practitioner_id else None,
            virtual=(v.class_code or "") in VIRTUAL_CLASSES) for v in visits],
    )


async def get_records(db: AsyncSession, actor: Actor, *, now: datetime) -> RecordsOut:
    """The patient's own record (labs are ``/labs``)."""
    patient_id = own_patient(actor, "records.read")
    out = await read_records(db, patient_id, now=now)
    await record(db, actor, "records.read", patient_id=patient_id, resource=f"patient:{patient_id}")
    await db.commit()
    return out


@dataclass(frozen=True)
class Export:
    bundle: dict[str, Any]
    filename: str


async def export_record(db: AsyncSession, actor: Actor, *, now: datetime) -> Export:
    """The patient's whole record as a FHIR R4 collection Bundle, without held results."""
    action = "records.export"
    patient_id = own_patient(actor, action)
    await triage(db, now=now, patient_ids=[patient_id])
    full = await read_record(db, patient_id)
    hidden = set((await db.exec(
        select(LabRelease.observation_id).where(col(LabRelease.patient_id) == patient_id,
                                                col(LabRelease.state) != LabState.released.value)
    )).all())
    # Lab results are shown once classified; a lab row still without one (it raced
    # in after triage) is left out too.
    classified = set((await db.exec(
        select(LabRelease.observation_id).where(col(LabRelease.patient_id) == patient_id))).all())
    everything = full.observations
    dropped = {o.id for o in everything
               if o.id in hidden or (o.category == LAB_CATEGORY and o.id not in classified)}
    # A report grouping a held result goes too: its conclusion may describe it.
    dropped_reports = {o.report_id for o in everything if o.id in dropped and o.report_id is not None}
    full.observations = [o for o in everything if o.id not in dropped]
    full.reports = [r for r in full.reports if r.id not in dropped_reports]
    bundle = build_bundle(full, bundle_id=str(uuid.uuid4()), timestamp=now)
    await record(db, actor, action, patient_id=patient_id, resource=f"Bundle/{bundle['id']}")
    await db.commit()
    return Export(bundle, f"health-record-{now:%Y-%m-%d}.json")


# --- the console's chart ------------------------------------------------------------------

async def read_chart(db: AsyncSession, actor: Actor, patient_id: int, *, now: datetime) -> ChartOut:
    """A patient's chart for a provider who may read it (care team or cross-cover)."""
    action = "chart.read"
    require_clinician(actor, action, f"patient:{patient_id}", patient_id)
    chart: ChartOpen = await open_chart(db, actor, patient_id, action=action, now=now)
    out = await read_records(db, patient_id, now=now)
    labs, held = await chart_labs(db, patient_id, now=now)
    await record(db, actor, action, patient_id=patient_id, resource=chart.resource)
    await db.commit()
    return ChartOut(record=out, labs=labs, held_ids=held, held_tests=await held_tests(db),
                    access=chart.via)


async def cross_cover(db: AsyncSession, actor: Actor, patient_id: int, body: CrossCoverIn, *,
                      now: datetime) -> CrossCoverOut:
    grant = await grant_cross_cover(db, actor, patient_id, reason=body.reason, now=now)
    await db.commit()
    return CrossCoverOut(patient_id=patient_id, expires_at=grant.expires_at)
