"""A patient's record exported as a FHIR R4 Bundle re-imports into the same rows.

Each round trip imports a bundle into a fresh database, exports the patient,
imports the export into another fresh database, and compares every column of
every row the patient's record reaches (row ids replaced by the ``fhir_id`` of
the row they point at, so two databases compare).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir_helpers import BOTH_BACKENDS, DIRECTORY_FILES, patient_files, stored_in
from sqlalchemy import ForeignKey
from sqlmodel import SQLModel, select

from rtc_server.db import as_utc
from rtc_server.demo import DEMO_PATIENTS, build_demo_bundle
from rtc_server.errors import NotFound
from rtc_server.fhir import import_bundle
from rtc_server.fhir.bundle import parse_bundle
from rtc_server.fhir.export import export_patient
from rtc_server.records import models

CARMELO = "4026988c-ab06-4635-8c53-86cbad7b1c56"
TODAY = date(2026, 11, 25)
OWNED = [models.Encounter, models.Condition, models.Observation, models.DiagnosticReport,
         models.Medication, models.CarePlan, models.Immunization, models.AllergyIntolerance,
         models.Appointment]
LINKED = [models.Practitioner, models.Organization, models.Slot, models.Schedule]
TABLES: dict[str, type[SQLModel]] = {
    t.__tablename__: t for t in [models.Patient, *OWNED, *LINKED]  # type: ignore[misc]
}
Snapshot = dict[str, list[dict[str, Any]]]


async def _import(factory: Any, bundle: dict[str, Any]) -> Any:
    async with factory() as session:
        summary = await import_bundle(session, bundle)
        await session.commit()
    return summary


async def _patient_id(factory: Any, fhir_id: str) -> int:
    async with factory() as session:
        row = (await session.exec(select(models.Patient).where(models.Patient.fhir_id == fhir_id))).one()
    assert row.id is not None
    return row.id


async def _export(factory: Any, fhir_id: str) -> dict[str, Any]:
    """Export, and check what any consumer would: strict JSON that our own parser reads."""
    async with factory() as session:
        bundle = await export_patient(session, await _patient_id(factory, fhir_id))
    bundle = json.loads(json.dumps(bundle, allow_nan=False))
    parsed = parse_bundle(bundle)
    assert parsed.type == "collection" and not parsed.skipped
    assert [e.resource_type for e in parsed.entries].count("Patient") == 1
    return bundle


def _targets(table: type[SQLModel]) -> dict[str, str]:
    """Foreign-key column -> the table it points at."""
    found = {}
    for column in table.__table__.columns:  # type: ignore[attr-defined]
        for fk in column.foreign_keys:
            assert isinstance(fk, ForeignKey)
            found[column.name] = fk.column.table.name
    return found


async def _snapshot(factory: Any, patient_fhir_id: str) -> Snapshot:
    """Every row the patient's record reaches, each as its columns with row ids
    swapped for the fhir_id they point at, sorted by fhir_id; plus the
    identifiers on file for the patient, practitioners and organizations."""
    async with factory() as session:
        rows: dict[str, dict[int, Any]] = {name: {} for name in TABLES}
        patient_id = await _patient_id(factory, patient_fhir_id)
        rows["patient"][patient_id] = await session.get(models.Patient, patient_id)
        for table in OWNED:
            query = select(table).where(table.patient_id == patient_id)  # type: ignore[attr-defined]
            rows[table.__tablename__] = {r.id: r for r in (await session.exec(query)).all()}
        grew = True
        while grew:  # follow references to practitioners, organizations, slots, schedules
            grew = False
            for name, by_id in list(rows.items()):
                for column, target in _targets(TABLES[name]).items():
                    for row in list(by_id.values()):
                        ref = getattr(row, column)
                        if ref is not None and ref not in rows[target]:
                            rows[target][ref] = await session.get(TABLES[target], ref)
                            grew = True
        idents = (await session.exec(select(models.FhirIdentifier))).all()
    fhir_ids = {name: {i: r.fhir_id for i, r in by_id.items()} for name, by_id in rows.items()}
    snapshot: Snapshot = {}
    for name, by_id in rows.items():
        links = _targets(TABLES[name])
        snapshot[name] = sorted((
            {column: (fhir_ids[links[column]][value] if column in links and value is not None
                      else as_utc(value) if isinstance(value, datetime) else value)
             for column, value in row.model_dump().items() if column != "id"}
            for row in by_id.values()), key=lambda r: r["fhir_id"])
    kinds = {"Patient": "patient", "Practitioner": "practitioner", "Organization": "organization"}
    snapshot["fhir_identifier"] = sorted(
        (i.resource_type, i.system, i.value, fhir_ids[kinds[i.resource_type]][i.row_id])
        for i in idents if i.row_id in fhir_ids[kinds[i.resource_type]])
    return snapshot


def _counts(snapshot: Snapshot) -> dict[str, int]:
    return {name: len(rows) for name, rows in snapshot.items()}


async def _round_trip(fresh_database: Any, bundle: dict[str, Any], patient: str
                      ) -> tuple[Snapshot, Snapshot, dict[str, Any]]:
    first, second = await fresh_database(), await fresh_database()
    await _import(first, bundle)
    exported = await _export(first, patient)
    summary = await _import(second, exported)
    placeholders = Counter(ref.split("?", 1)[0] for ref in set(
        re.findall(r'"reference": "([A-Za-z]+\?identifier=[^"]*)"', json.dumps(exported))))
    entries = Counter(e["resource"]["resourceType"] for e in exported["entry"])
    assert summary.created == entries + placeholders
    return await _snapshot(first, patient), await _snapshot(second, patient), exported


async def test_every_sample_patient_round_trips_through_an_export_with_the_same_records(
    fresh_database: Any, samples: dict[str, Any],
) -> None:
    for name in patient_files(samples):
        bundle = samples[name]
        patient = next(e["resource"]["id"] for e in bundle["entry"]
                       if e["resource"]["resourceType"] == "Patient")
        before, after, exported = await _round_trip(fresh_database, bundle, patient)
        assert _counts(after) == _counts(before), name
        assert after == before, name
        in_sample = stored_in(bundle)
        for table, rtypes in (("observation", ["Observation"]), ("condition", ["Condition"]),
                              ("immunization", ["Immunization"]), ("encounter", ["Encounter"]),
                              ("medication", ["MedicationRequest", "MedicationStatement"]),
                              ("care_plan", ["CarePlan"]), ("diagnostic_report", ["DiagnosticReport"])):
            assert len(after[table]) == sum(in_sample[t] for t in rtypes), (name, table)
        assert all(e["fullUrl"].startswith("urn:uuid:") for e in exported["entry"])


async def test_a_round_trip_keeps_codes_values_units_dates_and_statuses(
    fresh_database: Any, samples: dict[str, Any],
) -> None:
    """The same comparison, spelled out for a few values a patient reads."""
    bundle = samples["Carmelo_Streich_4026988c-ab06-4635-8c53-86cbad7b1c56.json"]
    _before, after, exported = await _round_trip(fresh_database, bundle, CARMELO)
    hemoglobin = next(o for o in after["observation"]
                      if o["fhir_id"] == "02c8d0b8-3216-464f-910d-f2d11acfaa21")
    assert (hemoglobin["code_system"], hemoglobin["code"]) == ("http://loinc.org", "718-7")
    assert (hemoglobin["value_quantity"], hemoglobin["value_unit"]) == (17.209, "g/dL")
    assert (hemoglobin["status"], hemoglobin["category"]) == ("final", "laboratory")
    assert hemoglobin["effective_at"] == datetime(2012, 4, 25, 20, 29, 3, tzinfo=UTC)
    assert hemoglobin["report_id"] is not None  # still in its panel
    sore_throat = next(c for c in after["condition"]
                       if c["fhir_id"] == "15dd8bea-1a5f-4256-88f9-56c925dab8ae")
    assert (sore_throat["code"], sore_throat["clinical_status"]) == ("43878008", "resolved")
    assert sore_throat["abatement_at"] == datetime(2013, 8, 10, 20, 29, 3, tzinfo=UTC)
    penicillin = next(m for m in after["medication"]
                      if m["fhir_id"] == "9b79eda0-979c-417f-968d-5fea2a919aee")
    assert (penicillin["code"], penicillin["status"], penicillin["reason"]) == (
        "834061", "stopped", "Streptococcal sore throat (disorder)")
    (patient,) = after["patient"]
    assert (patient["given_name"], patient["family_name"], patient["birth_date"]) == (
        "Carmelo", "Streich", date(1996, 3, 13))
    assert (patient["mrn"], patient["zip"]) == (CARMELO, "02144")
    assert exported["type"] == "collection"


@BOTH_BACKENDS
async def test_the_largest_sample_round_trips_on_both_databases(
    fresh_database: Any, samples: dict[str, Any],
) -> None:
    name = max(patient_files(samples), key=lambda n: len(samples[n]["entry"]))
    patient = name.rsplit("_", 1)[1].removesuffix(".json")
    before, after, _exported = await _round_trip(fresh_database, samples[name], patient)
    assert after == before


@BOTH_BACKENDS
async def test_every_demo_patient_round_trips_with_appointments_slots_and_schedules(
    fresh_database: Any,
) -> None:
    clinic, copy = await fresh_database(), await fresh_database()
    await _import(clinic, build_demo_bundle(TODAY))
    seen: Counter[str] = Counter()
    for demo in DEMO_PATIENTS:
        exported = await _export(clinic, demo.fhir_id)
        await _import(copy, exported)  # one copy for all: shared practitioners update in place
        before, after = await _snapshot(clinic, demo.fhir_id), await _snapshot(copy, demo.fhir_id)
        assert after == before, demo.key
        seen.update(name for name, rows in before.items() if rows)
        booked = {a["slot_id"] for a in before["appointment"]} - {None}
        assert {s["fhir_id"] for s in after["slot"]} == booked  # no one else's free slots
    assert {"appointment", "slot", "schedule", "allergy_intolerance", "care_plan"} <= set(seen)
    async with copy() as session:
        assert len((await session.exec(select(models.Patient))).all()) == len(DEMO_PATIENTS)


def _shapes() -> dict[str, Any]:
    """Mappings neither Synthea nor the demo exercise: a placeholder practitioner,
    a medication statement over a period, coded/boolean values, coded components,
    a care plan naming a condition by reference and one by text only."""
    patient = {"reference": "Patient/shape-p"}
    npi = "http://hl7.org/fhir/sid/us-npi"
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {
            "resourceType": "Patient", "id": "shape-p", "birthDate": "1961-07-04",
            "name": [{"family": "Okafor", "given": ["Ngozi", "Ada", "Lee"]}],
            "identifier": [{"type": {"text": "Employee number"}, "value": "E-17"}],
            "telecom": [{"system": "email", "value": "ngozi@example.org"}],
            "deceasedDateTime": "2024-02-03T04:05:06.789+01:00",
            "generalPractitioner": [{"reference": f"Practitioner?identifier={npi}|1234567893"}]}},
        {"resource": {
            "resourceType": "Encounter", "id": "shape-e", "status": "finished", "subject": patient,
            "class": {"code": "VR"}, "type": [{"text": "Video follow-up"}],
            "participant": [{"individual": {"reference": "Practitioner?identifier=9999"}}],
            "period": {"start": "2024-01-02T09:00:00Z", "end": "2024-01-02T09:20:00Z"}}},
        {"resource": {
            "resourceType": "Condition", "id": "shape-c", "subject": patient,
            "code": {"text": "Hypertension"}, "clinicalStatus": {"coding": [{"code": "active"}]},
            "category": [{"coding": [{"code": "problem-list-item"}]}], "onsetDateTime": "2019"}},
        {"resource": {
            "resourceType": "Observation", "id": "shape-o1", "status": "final", "subject": patient,
            "code": {"coding": [{"code": "72166-2"}]},
            "valueCodeableConcept": {"coding": [{"code": "8517006", "display": "Ex-smoker"}]}}},
        {"resource": {
            "resourceType": "Observation", "id": "shape-o2", "status": "final", "subject": patient,
            "code": {"text": "Fasting"}, "valueBoolean": False, "effectivePeriod": {
                "start": "2024-01-02T08:00:00Z"}}},
        {"resource": {
            "resourceType": "Observation", "id": "shape-o3", "status": "final", "subject": patient,
            "code": {"text": "Panel"}, "valueInteger": 3,
            "interpretation": [{"text": "Borderline"}],
            "referenceRange": [{"low": {"value": 1}, "text": "1 or more"}],
            "component": [
                {"code": {"coding": [{"code": "a"}]}, "valueQuantity": {"value": 1.5, "code": "mg"}},
                {"code": {"coding": [{"code": "b", "display": "Colour"}]},
                 "valueCodeableConcept": {"coding": [{"code": "y"}], "text": "Yellow"}},
                {"code": {"text": "Note"}, "valueString": "clear"},
                {"code": {"coding": [{"code": "d"}]}}]}},
        {"resource": {
            "resourceType": "MedicationStatement", "id": "shape-s", "status": "active",
            "subject": patient, "context": {"reference": "Encounter/shape-e"},
            "medicationCodeableConcept": {"text": "Vitamin D3 1000 IU"},
            "effectivePeriod": {"start": "2024-01-01", "end": "2024-06-30"},
            "dateAsserted": "2024-01-02", "dosage": [{"text": "1 capsule daily"}],
            "reasonReference": [{"reference": "Condition/shape-c"}]}},
        {"resource": {
            "resourceType": "CarePlan", "id": "shape-cp", "status": "active", "intent": "plan",
            "subject": patient, "category": [{"text": "Blood pressure"}],
            "addresses": [{"reference": "Condition/shape-c"}, {"display": "Stress"}],
            "activity": [{"detail": {"status": "in-progress", "description": "Walk daily"}},
                         {"detail": {"code": {"coding": [{"code": "229065009"}]}}}]}},
        {"resource": {
            "resourceType": "AllergyIntolerance", "id": "shape-a", "patient": patient,
            "code": {"text": "Latex"}, "category": ["environment"], "criticality": "low",
            "reaction": [{"severity": "mild"}, {"manifestation": [{"text": "Rash"}, {"text": "Itch"}]}]}},
    ]}


async def test_uncommon_shapes_and_placeholder_practitioners_round_trip(fresh_database: Any) -> None:
    before, after, exported = await _round_trip(fresh_database, _shapes(), "shape-p")
    assert after == before
    placeholders = [p for p in after["practitioner"] if p["placeholder"]]
    assert len(placeholders) == 2
    assert not any(e["resource"]["resourceType"] == "Practitioner" for e in exported["entry"])
    statement = after["medication"][0]
    assert (statement["source"], statement["reason"], statement["encounter_id"]) == (
        "MedicationStatement", "Hypertension", "shape-e")
    assert statement["end"] == datetime(2024, 6, 30, tzinfo=UTC)
    panel = next(o for o in after["observation"] if o["fhir_id"] == "shape-o3")
    assert panel["components"][1] == {"code": "b", "display": "Colour", "value": "Yellow",
                                      "value_code": "y"}


async def test_a_patient_in_a_full_clinic_exports_only_their_own_record(
    fresh_database: Any, samples: dict[str, Any],
) -> None:
    clinic = await fresh_database()
    for name in [*DIRECTORY_FILES, *patient_files(samples)]:
        await _import(clinic, samples[name])
    exported = await _export(clinic, CARMELO)
    subjects = {json.dumps(e["resource"].get("subject") or e["resource"].get("patient"))
                for e in exported["entry"]} - {"null"}
    assert subjects == {json.dumps({"reference": f"urn:uuid:{CARMELO}"})}
    kinds = Counter(e["resource"]["resourceType"] for e in exported["entry"])
    carmelo = stored_in(samples["Carmelo_Streich_4026988c-ab06-4635-8c53-86cbad7b1c56.json"])
    assert kinds == carmelo  # the directory's other 200 practitioners stay out


async def test_exporting_a_patient_who_is_not_on_file_is_not_found(session_factory: Any) -> None:
    async with session_factory() as session:
        with pytest.raises(NotFound):
            await export_patient(session, 123_456)
