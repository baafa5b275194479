"""Importing the real Synthea sample bundles (../shared/fhir-samples)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir_helpers import BOTH_BACKENDS, DIRECTORY_FILES, count_rows, patient_files, skipped_in, stored_in
from sqlmodel import select

from rtc_server.db import as_utc
from rtc_server.fhir import ImportSummary, import_bundle
from rtc_server.fhir.resources import STORED
from rtc_server.records.models import (
    CarePlan,
    Condition,
    DiagnosticReport,
    Encounter,
    Medication,
    Observation,
    Organization,
    Patient,
    Practitioner,
)

CARMELO = "4026988c-ab06-4635-8c53-86cbad7b1c56"
FANNIE = "8666cd40-7af9-48c6-a1a6-86a161195542"


def _order(samples: dict[str, Any], directories_first: bool) -> list[str]:
    patients = patient_files(samples)
    return [*DIRECTORY_FILES, *patients] if directories_first else [*patients, *DIRECTORY_FILES]


async def _import_all(session_factory: Any, samples: dict[str, Any], names: list[str]
                      ) -> dict[str, ImportSummary]:
    summaries = {}
    for name in names:
        async with session_factory() as session:
            summaries[name] = await import_bundle(session, samples[name], source=name)
            await session.commit()
    return summaries


def _distinct_ids(samples: dict[str, Any]) -> Counter[str]:
    """How many distinct resources of each stored type all the files hold."""
    seen = {(e["resource"]["resourceType"], e["resource"]["id"])
            for bundle in samples.values() for e in bundle["entry"]}
    return Counter(rtype for rtype, _id in seen if rtype in STORED)


@BOTH_BACKENDS
@pytest.mark.parametrize("directories_first", [False, True], ids=["patients_first",
                                                                    "directories_first"])
async def test_every_sample_imports_in_any_order_and_reimports_without_duplicates(
    session_factory: Any, samples: dict[str, Any], directories_first: bool,
) -> None:
    names = _order(samples, directories_first)
    first = await _import_all(session_factory, samples, names)

    created: Counter[str] = Counter()
    for name, summary in first.items():
        handled = summary.created + summary.updated
        assert handled == stored_in(samples[name]), name
        assert summary.skipped == skipped_in(samples[name]), name
        created += summary.created
    # Practitioners and organizations recur across files; each is created once.
    assert created == _distinct_ids(samples)
    async with session_factory() as session:
        rows = await count_rows(session)
    assert rows["patient"] == len(patient_files(samples)) == 8
    assert rows["practitioner"] == created["Practitioner"]
    assert rows["organization"] == created["Organization"]
    assert rows["observation"] == created["Observation"]
    assert rows["medication"] == created["MedicationRequest"]

    second = await _import_all(session_factory, samples, names)
    for name, summary in second.items():
        assert not summary.created, name
        assert summary.updated == stored_in(samples[name]), name
    async with session_factory() as session:
        assert await count_rows(session) == rows


async def test_real_values_land_in_the_right_columns(
    session_factory: Any, samples: dict[str, Any],
) -> None:
    await _import_all(session_factory, samples, _order(samples, directories_first=False))
    async with session_factory() as session:
        carmelo = (await session.exec(select(Patient).where(Patient.fhir_id == CARMELO))).one()
        assert (carmelo.given_name, carmelo.family_name) == ("Carmelo", "Streich")
        assert (carmelo.given_norm, carmelo.family_norm) == ("carmelo", "streich")
        assert carmelo.birth_date == date(1996, 3, 13)
        assert carmelo.mrn == CARMELO
        assert carmelo.zip == "02144"
        assert carmelo.city == "Somerville"
        assert carmelo.email is None  # Synthea patients have no email
        assert carmelo.phone == "555-371-7336"
        assert {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-10-6621",
                "type": "SS"} in carmelo.identifiers

        fannie = (await session.exec(select(Patient).where(Patient.fhir_id == FANNIE))).one()
        assert fannie.zip is None

        hemoglobin = (await session.exec(select(Observation).where(
            Observation.fhir_id == "02c8d0b8-3216-464f-910d-f2d11acfaa21"))).one()
        assert hemoglobin.patient_id == carmelo.id
        assert hemoglobin.category == "laboratory"
        assert (hemoglobin.code, hemoglobin.display) == ("718-7", "Hemoglobin [Mass/volume] in Blood")
        assert (hemoglobin.value_quantity, hemoglobin.value_unit) == (17.209, "g/dL")
        assert hemoglobin.interpretation_code is None  # Synthea gives no ranges
        assert hemoglobin.reference_low is None and hemoglobin.reference_high is None
        assert as_utc(hemoglobin.effective_at) == datetime(2012, 4, 25, 20, 29, 3, tzinfo=UTC)
        report = await session.get(DiagnosticReport, hemoglobin.report_id)
        assert report is not None and report.code == "58410-2"
        assert report.patient_id == carmelo.id

        sore_throat = (await session.exec(select(Condition).where(
            Condition.fhir_id == "15dd8bea-1a5f-4256-88f9-56c925dab8ae"))).one()
        assert sore_throat.display == "Streptococcal sore throat (disorder)"
        assert (sore_throat.code_system, sore_throat.code) == ("http://snomed.info/sct", "43878008")
        assert sore_throat.clinical_status == "resolved"
        assert as_utc(sore_throat.abatement_at) == datetime(2013, 8, 10, 20, 29, 3, tzinfo=UTC)

        penicillin = (await session.exec(select(Medication).where(
            Medication.fhir_id == "9b79eda0-979c-417f-968d-5fea2a919aee"))).one()
        assert penicillin.display == "Penicillin V Potassium 250 MG Oral Tablet"
        assert (penicillin.source, penicillin.status, penicillin.code) == (
            "MedicationRequest", "stopped", "834061")
        assert penicillin.reason == "Streptococcal sore throat (disorder)"
        prescriber = await session.get(Practitioner, penicillin.prescriber_id)
        assert prescriber is not None
        assert (prescriber.prefix, prescriber.given_name, prescriber.family_name) == (
            "Dr.", "Hong", "Kuhlman")

        plan = (await session.exec(select(CarePlan).where(CarePlan.patient_id == carmelo.id))).one()
        assert (plan.title, plan.status) == ("Wound care", "completed")
        assert plan.addresses == "Laceration of thigh"
        assert [a["display"] for a in plan.activities] == [
            "Dressing change management", "Behavior to prevent infection"]

        visit = (await session.exec(select(Encounter).where(
            Encounter.fhir_id == "ae08c298-6d3c-43d9-ad44-bb87831c19ec"))).one()
        doctor = await session.get(Practitioner, visit.practitioner_id)
        clinic = await session.get(Organization, visit.organization_id)
        assert doctor is not None and doctor.npi == "9999998799"
        assert clinic is not None and clinic.name == "PCP659" and clinic.zip == "02139-1840"
        assert visit.type_display == "Well child visit (procedure)"

