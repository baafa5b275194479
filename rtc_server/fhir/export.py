"""A patient's whole record as a FHIR R4 Bundle of type ``collection``.

``export_patient`` reads the patient's rows (a dozen queries, whatever the
size of the record) and ``build_bundle`` assembles them without I/O, through
``rtc_server.fhir.export_mapping``. The bundle holds the Patient; their
Encounters, Conditions, Observations (labs, vitals and the rest),
DiagnosticReports, MedicationRequests and MedicationStatements, CarePlans,
Immunizations, AllergyIntolerances and Appointments; and whatever those point
at so every reference resolves inside the bundle: Practitioners,
Organizations, and the Slots the appointments hold with their Schedules.

Entries have ``fullUrl`` ``urn:uuid:<uuid>`` (the row's ``fhir_id`` when it is a
UUID, else a name-based UUID of it) and references use those URLs; resource
ids are the rows' ``fhir_id``. A practitioner or organization known only as a
placeholder (see ``rtc_server.fhir.resolve``) is not a resource of ours to
export: references to it are conditional (``Practitioner?identifier=...``), as
in the bundle that created it. ``import_bundle`` of the result into a fresh
database gives the same rows; into the database it came from, it changes
nothing.

Nothing is written and nothing is audited here: the caller, which knows who
asked, records the export (for example ``resource=f"Bundle/{bundle['id']}"``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.db import utcnow
from rtc_server.errors import NotFound
from rtc_server.fhir import export_mapping as out
from rtc_server.fhir.bundle import is_fhir_id
from rtc_server.fhir.resolve import chunks
from rtc_server.records import models

__all__ = ["PatientRecord", "build_bundle", "export_patient", "read_record"]

Json = dict[str, Any]
_Row = TypeVar("_Row", bound=SQLModel)
#: Namespace of the name-based UUIDs given to rows whose fhir_id is not a UUID.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://rtc-server.example.org/fhir/export")


@dataclass
class PatientRecord:
    """Every row one export covers, each list in id order."""

    patient: models.Patient
    encounters: list[models.Encounter] = field(default_factory=list)
    conditions: list[models.Condition] = field(default_factory=list)
    observations: list[models.Observation] = field(default_factory=list)
    reports: list[models.DiagnosticReport] = field(default_factory=list)
    medications: list[models.Medication] = field(default_factory=list)
    care_plans: list[models.CarePlan] = field(default_factory=list)
    immunizations: list[models.Immunization] = field(default_factory=list)
    allergies: list[models.AllergyIntolerance] = field(default_factory=list)
    appointments: list[models.Appointment] = field(default_factory=list)
    slots: list[models.Slot] = field(default_factory=list)
    schedules: list[models.Schedule] = field(default_factory=list)
    practitioners: list[models.Practitioner] = field(default_factory=list)
    organizations: list[models.Organization] = field(default_factory=list)


async def export_patient(session: AsyncSession, patient_id: int) -> dict[str, Any]:
    """The whole record of patient ``patient_id`` as a FHIR R4 Bundle (JSON-ready
    dict, type ``collection``, a fresh ``id`` and ``timestamp``).

    Read-only: it neither writes nor audits, so the caller may record its audit
    row in the same transaction. Raises ``NotFound`` when there is no such
    patient; whether the caller may see that patient is the caller's check.
    """
    record = await read_record(session, patient_id)
    return build_bundle(record, bundle_id=str(uuid.uuid4()), timestamp=utcnow())


async def read_record(session: AsyncSession, patient_id: int) -> PatientRecord:
    """The rows ``export_patient`` covers (also what a printable record shows).
    Raises ``NotFound`` when there is no such patient."""
    patient = await session.get(models.Patient, patient_id)
    if patient is None:
        raise NotFound()
    record = PatientRecord(
        patient=patient,
        encounters=await _owned(session, models.Encounter, patient_id),
        conditions=await _owned(session, models.Condition, patient_id),
        observations=await _owned(session, models.Observation, patient_id),
        reports=await _owned(session, models.DiagnosticReport, patient_id),
        medications=await _owned(session, models.Medication, patient_id),
        care_plans=await _owned(session, models.CarePlan, patient_id),
        immunizations=await _owned(session, models.Immunization, patient_id),
        allergies=await _owned(session, models.AllergyIntolerance, patient_id),
        appointments=await _owned(session, models.Appointment, patient_id),
    )
    record.slots = await _by_ids(session, models.Slot, (a.slot_id for a in record.appointments))
    record.schedules = await _by_ids(session, models.Schedule, (s.schedule_id for s in record.slots))
    record.practitioners = await _by_ids(session, models.Practitioner, [
        patient.primary_practitioner_id,
        *(e.practitioner_id for e in record.encounters),
        *(r.performer_id for r in record.reports),
        *(m.prescriber_id for m in record.medications),
        *(a.practitioner_id for a in record.appointments),
        *(s.practitioner_id for s in record.schedules),
    ])
    record.organizations = await _by_ids(
        session, models.Organization, (e.organization_id for e in record.encounters))
    return record


async def _owned(session: AsyncSession, table: type[_Row], patient_id: int) -> list[_Row]:
    column = table.patient_id  # type: ignore[attr-defined]
    query = select(table).where(column == patient_id).order_by(table.id)  # type: ignore[attr-defined]
    return list((await session.exec(query)).all())


async def _by_ids(session: AsyncSession, table: type[_Row], ids: Iterable[int | None]) -> list[_Row]:
    found: list[_Row] = []
    column = table.id  # type: ignore[attr-defined]
    for chunk in chunks(sorted({i for i in ids if i is not None})):
        found.extend((await session.exec(select(table).where(column.in_(chunk)))).all())
    return sorted(found, key=lambda row: row.id)  # type: ignore[attr-defined]


# --- assembling, without I/O ---------------------------------------------------------

def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


class _Refs:
    """``export_mapping.Refs``: where each exported row is, by (type, row id)."""

    def __init__(self) -> None:
        self._refs: dict[tuple[str, int], str] = {}

    def add(self, rtype: str, row: Any) -> tuple[str, str]:
        """Give ``row`` its resource id and fullUrl; returns both."""
        fhir_id = row.fhir_id if is_fhir_id(row.fhir_id) else _derived(rtype, row.fhir_id)
        url = "urn:uuid:" + (fhir_id if _is_uuid(fhir_id) else _derived(rtype, fhir_id))
        self._refs[(rtype, row.id)] = url
        return fhir_id, url

    def add_placeholder(self, rtype: str, row: models.Practitioner | models.Organization) -> None:
        """A row known only by an identifier: referenced as the bundle that made it did."""
        ident = next((i for i in row.identifiers if i.get("value")), None)
        if ident is None:
            return
        value = quote(ident["value"], safe=":/")
        system = ident.get("system")
        self._refs[(rtype, row.id)] = f"{rtype}?identifier=" + (
            f"{quote(system, safe=':/')}|{value}" if system else value)  # type: ignore[union-attr]

    def to(self, resource_type: str, row_id: int | None) -> Json | None:
        if row_id is None:
            return None
        url = self._refs.get((resource_type, row_id))
        return {"reference": url} if url is not None else None


def _derived(rtype: str, fhir_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{rtype}/{fhir_id}"))


def build_bundle(record: PatientRecord, *, bundle_id: str, timestamp: datetime) -> dict[str, Any]:
    """The Bundle for ``record`` (pure: same record and arguments, same dict)."""
    refs = _Refs()
    exported_schedules = {s.id for s in record.schedules}
    slots = [s for s in record.slots if s.schedule_id in exported_schedules]  # a Slot needs one
    for rtype, rows in (("Practitioner", record.practitioners), ("Organization", record.organizations)):
        for row in rows:
            if row.placeholder:
                refs.add_placeholder(rtype, row)

    def plain(rtype: str, rows: Sequence[Any]) -> list[tuple[str, Any]]:
        return [(rtype, row) for row in rows if not getattr(row, "placeholder", False)]

    ordered: list[tuple[str, Any]] = [
        ("Patient", record.patient),
        *plain("Organization", record.organizations),
        *plain("Practitioner", record.practitioners),
        *plain("Schedule", record.schedules),
        *plain("Slot", slots),
        *plain("Encounter", record.encounters),
        *plain("Condition", record.conditions),
        *plain("Observation", record.observations),
        *plain("DiagnosticReport", record.reports),
        *((m.source, m) for m in record.medications),
        *plain("CarePlan", record.care_plans),
        *plain("Immunization", record.immunizations),
        *plain("AllergyIntolerance", record.allergies),
        *plain("Appointment", record.appointments),
    ]
    placed = [(rtype, row, *refs.add(rtype, row)) for rtype, row in ordered]

    results: dict[int, list[int]] = {}
    for obs in record.observations:
        if obs.report_id is not None:
            results.setdefault(obs.report_id, []).append(obs.id)  # type: ignore[arg-type]
    conditions: dict[str, int] = {}
    for cond in record.conditions:
        conditions.setdefault(cond.display, cond.id)  # type: ignore[arg-type]

    entries = []
    for rtype, row, fhir_id, url in placed:
        if rtype == "DiagnosticReport":
            resource = out.diagnostic_report(row, fhir_id, refs, results.get(row.id, []))
        elif rtype == "CarePlan":
            resource = out.care_plan(row, fhir_id, refs, conditions)
        else:
            resource = _MAPPERS[rtype](row, fhir_id, refs)
        entries.append({"fullUrl": url, "resource": resource})
    stamp = out.instant(timestamp)
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"lastUpdated": stamp},
        "type": "collection",
        "timestamp": stamp,
        "entry": entries,
    }


_MAPPERS: dict[str, Any] = {
    "Patient": out.patient,
    "Organization": out.organization,
    "Practitioner": out.practitioner,
    "Schedule": out.schedule,
    "Slot": out.slot,
    "Encounter": out.encounter,
    "Condition": out.condition,
    "Observation": out.observation,
    "MedicationRequest": out.medication,
    "MedicationStatement": out.medication,
    "Immunization": out.immunization,
    "AllergyIntolerance": out.allergy,
    "Appointment": out.appointment,
}
