"""Fixtures for the FHIR importer tests: the real Synthea sample bundles, read
from ../shared/fhir-samples (never copied into the repo).

The database comes from the shared ``session_factory`` (tests/conftest.py):
a fresh database with the migrations applied."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from fhir_helpers import SAMPLES


@pytest.fixture(scope="session")
def samples() -> dict[str, dict[str, Any]]:
    """Every sample bundle, decoded once, by file name. Tests must not mutate them."""
    files = sorted(SAMPLES.glob("*.json"))
    if not files:
        reason = f"no FHIR sample bundles in {SAMPLES}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"FHIR samples are required in CI: {reason}")
        pytest.skip(reason)
    return {f.name: json.loads(f.read_text(encoding="utf-8")) for f in files}

