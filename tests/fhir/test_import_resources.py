"""Resource shapes the Synthea samples do not use: relative references in a
searchset, medications named by a referenced or contained Medication."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from rtc_server.fhir import BundleError, import_bundle
from rtc_server.records.models import Medication, Patient, Practitioner

BASE = "https://fhir.example.org/r4"


def _searchset() -> dict[str, Any]:
    subject = {"reference": "Patient/p1"}
    return {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": f"{BASE}/Patient/p1", "search": {"mode": "match"}, "resource": {
            "resourceType": "Patient", "id": "p1", "birthDate": "1970",
            "name": [{"text": "Zoë Brontë-Smith"}],
            "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "MRN-7"}]}},
        {"fullUrl": f"{BASE}/Medication/m1", "resource": {
            "resourceType": "Medication", "id": "m1",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                 "code": "197361", "display": "Amlodipine 5 MG Oral Tablet"}]}}},
        {"fullUrl": f"{BASE}/MedicationRequest/r1", "resource": {
            "resourceType": "MedicationRequest", "id": "r1", "status": "active",
            "intent": "order", "subject": subject,
            "medicationReference": {"reference": "Medication/m1"},
            "dispenseRequest": {"numberOfRepeatsAllowed": 2}}},
        {"fullUrl": f"{BASE}/MedicationStatement/s1", "resource": {
            "resourceType": "MedicationStatement", "id": "s1", "status": "active",
            "subject": subject, "contained": [{
                "resourceType": "Medication", "id": "med",
                "code": {"text": "Vitamin D3 1000 IU"}}],
            "medicationReference": {"reference": "#med"},
            "effectivePeriod": {"start": "2024-01-01"},
            "dosage": [{"text": "1 capsule daily"}]}},
        {"fullUrl": f"{BASE}/Provenance/x", "resource": {"resourceType": "Provenance", "id": "x"}},
    ]}


async def test_a_searchset_with_relative_references_and_medication_references_imports(
    session_factory: Any,
) -> None:
    async with session_factory() as session:
        summary = await import_bundle(session, _searchset())
        await session.commit()
    assert summary.created == {"Patient": 1, "MedicationRequest": 1, "MedicationStatement": 1}
    assert summary.skipped == {"Medication": 1, "Provenance": 1}
    async with session_factory() as session:
        patient = (await session.exec(select(Patient))).one()
        assert (patient.given_name, patient.family_name, patient.mrn) == (
            "Zoë", "Brontë-Smith", "MRN-7")
        assert (patient.given_norm, patient.family_norm) == ("zoe", "bronte smith")
        meds = {m.source: m for m in (await session.exec(select(Medication))).all()}
    request, statement = meds["MedicationRequest"], meds["MedicationStatement"]
    assert (request.display, request.code, request.refills_allowed) == (
        "Amlodipine 5 MG Oral Tablet", "197361", 2)
    assert (statement.display, statement.dosage) == ("Vitamin D3 1000 IU", "1 capsule daily")
    assert request.patient_id == statement.patient_id == patient.id


async def test_a_medication_request_naming_no_drug_is_rejected(session_factory: Any) -> None:
    bundle = _searchset()
    del bundle["entry"][2]["resource"]["medicationReference"]
    async with session_factory() as session:
        with pytest.raises(BundleError) as caught:
            await import_bundle(session, bundle)
    assert caught.value.field == "entry[2].resource.medicationCodeableConcept"


async def test_a_subject_that_is_not_a_patient_is_rejected(session_factory: Any) -> None:
    bundle = _searchset()
    bundle["entry"][3]["resource"]["subject"] = {"reference": "Medication/m1"}
    async with session_factory() as session:
        with pytest.raises(BundleError) as caught:
            await import_bundle(session, bundle)
    assert (caught.value.index, caught.value.field) == (3, "entry[3].resource.subject")


def _patient_entry(pid: str, email: str) -> dict[str, Any]:
    return {"fullUrl": f"{BASE}/Patient/{pid}", "resource": {
        "resourceType": "Patient", "id": pid, "birthDate": "1980-02-03",
        "name": [{"family": "Lopez", "given": ["Maria"]}],
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": pid}],
        "telecom": [{"system": "phone", "value": "555-0100"}, {"system": "email", "value": email}]}}


async def test_imported_email_addresses_are_validated_and_normalised(session_factory: Any) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        _patient_entry("list", "a@x.org, b@y.org"),
        _patient_entry("header", "a@x.org\r\nBcc: e@y.org"),
        _patient_entry("good", "  Maria.Lopez@Example.ORG "),
        {"fullUrl": f"{BASE}/Practitioner/dr", "resource": {
            "resourceType": "Practitioner", "id": "dr", "name": [{"family": "Okafor"}],
            "telecom": [{"system": "email", "value": "dr@x.org; other@y.org"}]}},
    ]}
    async with session_factory() as session:
        summary = await import_bundle(session, bundle)
        await session.commit()
    assert summary.created == {"Patient": 3, "Practitioner": 1}
    async with session_factory() as session:
        emails = {p.mrn: p.email for p in (await session.exec(select(Patient))).all()}
        doctor = (await session.exec(select(Practitioner))).one()
    assert emails == {"list": None, "header": None, "good": "Maria.Lopez@example.org"}
    assert doctor.email is None
