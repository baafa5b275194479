"""Conditional references (``Practitioner?identifier=system|value``), as newer
Synthea patient bundles use them for practitioners and organizations that live
in separate files imported before or after the patients."""

from __future__ import annotations

from typing import Any

import pytest
from fhir_helpers import count_rows
from sqlmodel import select

from rtc_server.fhir import BundleError, import_bundle
from rtc_server.records.models import Encounter, Organization, Practitioner

NPI = "http://hl7.org/fhir/sid/us-npi"
SYNTHEA = "https://github.com/synthetichealth/synthea"


def _patient_bundle() -> dict[str, Any]:
    patient = "urn:uuid:5a1e0000-0000-4000-8000-000000000001"
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient, "resource": {
            "resourceType": "Patient", "id": "5a1e0000-0000-4000-8000-000000000001",
            "name": [{"family": "Tester", "given": ["Tess"]}], "birthDate": "1980-02-29"}},
        {"fullUrl": "urn:uuid:5a1e0000-0000-4000-8000-000000000002", "resource": {
            "resourceType": "Encounter", "id": "5a1e0000-0000-4000-8000-000000000002",
            "status": "finished", "subject": {"reference": patient},
            "participant": [{"individual": {
                "reference": f"Practitioner?identifier={NPI}|9999912345"}}],
            "serviceProvider": {"reference": f"Organization?identifier={SYNTHEA}|abc"},
            "period": {"start": "2020-01-02T10:00:00-05:00"}}},
    ]}


def _directory_bundle() -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch", "entry": [
        {"fullUrl": "urn:uuid:d0c00000-0000-4000-8000-000000000001", "resource": {
            "resourceType": "Practitioner", "id": "d0c00000-0000-4000-8000-000000000001",
            "identifier": [{"system": NPI, "value": "9999912345"}],
            "name": [{"family": "Osler", "given": ["Willa"], "prefix": ["Dr."]}]}},
        {"fullUrl": "urn:uuid:d0c00000-0000-4000-8000-000000000002", "resource": {
            "resourceType": "Organization", "id": "d0c00000-0000-4000-8000-000000000002",
            "identifier": [{"system": SYNTHEA, "value": "abc"}], "name": "Hilltop Clinic"}},
    ]}


async def _import(session_factory: Any, bundle: dict[str, Any]) -> Any:
    async with session_factory() as session:
        summary = await import_bundle(session, bundle)
        await session.commit()
        return summary


async def _encounter_links(session_factory: Any) -> tuple[Practitioner, Organization]:
    async with session_factory() as session:
        visit = (await session.exec(select(Encounter))).one()
        doctor = await session.get(Practitioner, visit.practitioner_id)
        clinic = await session.get(Organization, visit.organization_id)
        assert doctor is not None and clinic is not None
        return doctor, clinic


async def test_patients_first_get_placeholders_that_the_directory_fills_in(
    session_factory: Any,
) -> None:
    first = await _import(session_factory, _patient_bundle())
    assert first.created["Practitioner"] == first.created["Organization"] == 1
    doctor, clinic = await _encounter_links(session_factory)
    assert doctor.placeholder and doctor.npi == "9999912345" and doctor.family_name == ""
    assert clinic.placeholder

    directory = await _import(session_factory, _directory_bundle())
    assert not directory.created
    assert directory.updated["Practitioner"] == directory.updated["Organization"] == 1
    filled_doctor, filled_clinic = await _encounter_links(session_factory)
    assert filled_doctor.id == doctor.id and not filled_doctor.placeholder
    assert filled_doctor.fhir_id == "d0c00000-0000-4000-8000-000000000001"
    assert (filled_doctor.given_name, filled_doctor.family_name) == ("Willa", "Osler")
    assert (filled_clinic.id, filled_clinic.name) == (clinic.id, "Hilltop Clinic")

    async with session_factory() as session:
        rows = await count_rows(session)
    again = await _import(session_factory, _patient_bundle())
    assert not again.created
    async with session_factory() as session:
        assert await count_rows(session) == rows
        assert rows["practitioner"] == rows["organization"] == 1


async def test_directory_first_resolves_to_the_rows_already_on_file(
    session_factory: Any,
) -> None:
    await _import(session_factory, _directory_bundle())
    summary = await _import(session_factory, _patient_bundle())
    assert "Practitioner" not in summary.created and "Organization" not in summary.created
    doctor, clinic = await _encounter_links(session_factory)
    assert (doctor.family_name, clinic.name) == ("Osler", "Hilltop Clinic")


async def test_a_conditional_reference_inside_the_same_bundle_uses_that_entry(
    session_factory: Any,
) -> None:
    bundle = _patient_bundle()
    bundle["entry"] += _directory_bundle()["entry"]
    summary = await _import(session_factory, bundle)
    assert summary.created["Practitioner"] == 1
    doctor, _clinic = await _encounter_links(session_factory)
    assert not doctor.placeholder and doctor.family_name == "Osler"


async def test_a_conditional_reference_to_an_unknown_patient_is_an_error(
    session_factory: Any,
) -> None:
    bundle = _patient_bundle()
    bundle["entry"][1]["resource"]["subject"] = {
        "reference": "Patient?identifier=http://hospital.smarthealthit.org|nobody"}
    with pytest.raises(BundleError) as caught:
        await _import(session_factory, bundle)
    assert caught.value.field == "entry[1].resource.subject"
