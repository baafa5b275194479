"""Test-wide constants and helpers importable from any test module
(``from tests.harness import ...``); fixtures live in conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fhir-samples"


def need(what: str, reason: str) -> None:
    """Skip outside CI, fail inside it: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI: {reason}")
    pytest.skip(f"{what} unavailable: {reason}")
