"""The ``rtc-server`` command as an operator runs it: a real subprocess."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import IN_CI, SAMPLES


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith("RTC_")
    } | {"RTC_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "-m", "rtc_server", *args], env=environ, capture_output=True, text=True,
        timeout=120, check=False,
    )


def counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        tables = ["patient", "practitioner", "organization", "observation", "condition",
                  "immunization", "encounter", "medication", "care_plan"]
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # noqa: S608
    finally:
        con.close()


def sample(name_prefix: str) -> Path:
    if not SAMPLES.is_dir():
        if IN_CI:
            pytest.fail(f"FHIR samples missing at {SAMPLES}")
        pytest.skip(f"FHIR samples not found at {SAMPLES}")
    return next(SAMPLES.glob(f"{name_prefix}*.json"))


def test_bad_configuration_stops_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    r = run_cli(tmp_path, "migrate", RTC_BASE_URL="ftp://clinic")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "RTC_BASE_URL" in lines[0]


def test_import_fhir_command_loads_a_sample_bundle_and_reimport_adds_nothing(tmp_path: Path) -> None:
    bundle = sample("Wm_Bergstrom")
    first = run_cli(tmp_path, "import-fhir", str(bundle))
    assert first.returncode == 0, first.stderr
    assert "Patient" in first.stdout
    db = tmp_path / "data" / "rtc_server.db"
    loaded = counts(db)
    assert loaded["patient"] == 1
    assert loaded["observation"] == 48
    assert loaded["condition"] == 4
    assert loaded["medication"] == 5
    assert loaded["care_plan"] == 2
    con = sqlite3.connect(db)
    family, birth = con.execute("SELECT family_name, birth_date FROM patient").fetchone()
    con.close()
    assert family.startswith("Bergstrom") and str(birth) == "1990-11-18"
    again = run_cli(tmp_path, "import-fhir", str(bundle))
    assert again.returncode == 0, again.stderr
    assert counts(db) == loaded


def test_import_fhir_command_rejects_malformed_bundle_and_changes_nothing(tmp_path: Path) -> None:
    good = sample("Fannie_Waelchi")
    assert run_cli(tmp_path, "import-fhir", str(good)).returncode == 0
    db = tmp_path / "data" / "rtc_server.db"
    before = counts(db)
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"resourceType":"Bundle","type":"collection","entry":['
        '{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient","id":"a",'
        '"name":[{"family":"Ok","given":["Fine"]}],"birthDate":"1990-01-01"}},'
        '{"resource":{"resourceType":"Condition","id":"c","subject":{"reference":"urn:uuid:nope"},'
        '"code":{"text":"x"}}}]}'
    )
    r = run_cli(tmp_path, "import-fhir", str(broken))
    assert r.returncode == 1
    assert "entry[1]" in r.stderr and "subject" in r.stderr
    assert counts(db) == before
    notjson = tmp_path / "not.json"
    notjson.write_text("{nope")
    r = run_cli(tmp_path, "import-fhir", str(notjson))
    assert r.returncode == 1 and "JSON" in r.stderr


def test_import_writes_an_audit_row_per_patient_without_health_data(tmp_path: Path) -> None:
    bundle = sample("Fannie_Waelchi")
    assert run_cli(tmp_path, "import-fhir", str(bundle)).returncode == 0
    con = sqlite3.connect(tmp_path / "data" / "rtc_server.db")
    rows = con.execute(
        "SELECT action, actor_id, actor_role, patient_id, resource FROM audit_event "
        "WHERE action = 'records.import'"
    ).fetchall()
    (family,) = con.execute("SELECT family_name FROM patient").fetchone()
    con.close()
    assert rows == [("records.import", None, "system", 1, "fhir-bundle")]
    assert all(family not in str(r) for r in rows)
    verify = run_cli(tmp_path, "audit", "verify")
    assert verify.returncode == 0 and "intact" in verify.stdout


@pytest.mark.parametrize("shared", [
    {"RTC_REDIS_URL": "redis://127.0.0.1:6379/0"},
    {"RTC_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test"},
])
def test_several_instances_without_a_shared_key_refuse_to_start(
    tmp_path: Path, shared: dict[str, str]
) -> None:
    """Each instance would generate its own key and could not read the others'
    two-factor secrets: one clear line naming the variable instead."""
    r = run_cli(tmp_path, "serve", "--port", "1", **shared)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "RTC_SECRET_KEY must be set" in lines[0]
    assert not (tmp_path / "data" / "secret_key").exists()
