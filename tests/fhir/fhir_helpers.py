"""Helpers shared by the FHIR importer tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import SQLModel, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.fhir.resources import STORED
from rtc_server.records import models

#: ``FHIR_SAMPLES_DIR`` overrides it (e.g. to run these tests from a scratch worktree).
SAMPLES = Path(os.environ.get("FHIR_SAMPLES_DIR")
               or Path(__file__).resolve().parents[3] / "shared" / "fhir-samples")
BOTH_BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
DIRECTORY_FILES = ("hospitalInformation.json", "practitionerInformation.json")

RECORD_TABLES: list[type[SQLModel]] = [
    models.Organization, models.Practitioner, models.Patient, models.Encounter,
    models.Condition, models.Observation, models.DiagnosticReport, models.Medication,
    models.CarePlan, models.Immunization, models.AllergyIntolerance, models.Schedule,
    models.Slot, models.Appointment, models.FhirIdentifier,
]


def patient_files(samples: dict[str, Any]) -> list[str]:
    return [name for name in samples if name not in DIRECTORY_FILES]


def types_in(bundle: dict[str, Any]) -> Counter[str]:
    return Counter(e["resource"]["resourceType"] for e in bundle["entry"])


def stored_in(bundle: dict[str, Any]) -> Counter[str]:
    return Counter({t: n for t, n in types_in(bundle).items() if t in STORED})


def skipped_in(bundle: dict[str, Any]) -> Counter[str]:
    return Counter({t: n for t, n in types_in(bundle).items() if t not in STORED})


async def count_rows(session: AsyncSession) -> dict[str, int]:
    return {
        table.__tablename__: (await session.exec(select(func.count()).select_from(table))).one()
        for table in RECORD_TABLES
    }
