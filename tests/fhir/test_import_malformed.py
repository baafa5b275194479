"""Malformed bundles fail with the entry and field to fix, and write nothing."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir_helpers import BOTH_BACKENDS, count_rows
from sqlmodel import select

from rtc_server.demo import build_demo_bundle
from rtc_server.errors import InvalidInput
from rtc_server.fhir import BundleError, import_bundle, load_bundle_file
from rtc_server.records.models import Observation, Organization

SMALL = "Fannie_Waelchi_8666cd40-7af9-48c6-a1a6-86a161195542.json"


@pytest.fixture
async def on_file(session_factory: Any, samples: dict[str, Any]) -> dict[str, int]:
    """One patient already imported, so "unchanged" is checked against real rows."""
    async with session_factory() as session:
        await import_bundle(session, samples["Carmelo_Streich_4026988c-ab06-4635-8c53-86cbad7b1c56.json"])
        await session.commit()
        return await count_rows(session)


def _fresh_copy(samples: dict[str, Any]) -> dict[str, Any]:
    """The small sample under new ids, so importing it would create rows."""
    bundle = copy.deepcopy(samples[SMALL])
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] not in ("Organization", "Practitioner"):
            entry["resource"]["id"] = "x-" + entry["resource"]["id"]
    return bundle


def _index_of(bundle: dict[str, Any], rtype: str, last: bool = False) -> int:
    found = [i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == rtype]
    return found[-1] if last else found[0]


async def _rejected(session_factory: Any, bundle: object, on_file: dict[str, int]) -> BundleError:
    async with session_factory() as session:
        with pytest.raises(BundleError) as caught:
            await import_bundle(session, bundle)
        assert await count_rows(session) == on_file  # nothing flushed either
        await session.commit()
    async with session_factory() as session:
        assert await count_rows(session) == on_file
    return caught.value


async def test_a_file_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"resourceType": "Bundle", "entry": [', encoding="utf-8")
    with pytest.raises(BundleError) as caught:
        load_bundle_file(path)
    assert caught.value.index is None
    assert caught.value.field == "<file>"
    assert "broken.json" in caught.value.message
    assert isinstance(caught.value, InvalidInput)  # maps to a 422 naming the field


async def test_a_resource_that_is_not_a_bundle_is_rejected(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    patient = copy.deepcopy(samples[SMALL]["entry"][0]["resource"])
    error = await _rejected(session_factory, patient, on_file)
    assert (error.index, error.field) == (None, "resourceType")
    assert "Bundle" in error.message


@pytest.mark.parametrize(("change", "field"), [
    (lambda b: b.update(entry={"not": "a list"}), "entry"),
    (lambda b: b.update(type="document"), "type"),
])
async def test_a_bundle_with_a_bad_shape_is_rejected(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
    change: Any, field: str,
) -> None:
    bundle = _fresh_copy(samples)
    change(bundle)
    error = await _rejected(session_factory, bundle, on_file)
    assert (error.index, error.field) == (None, field)


async def test_an_entry_without_a_resource_names_its_index(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    bundle = _fresh_copy(samples)
    del bundle["entry"][5]["resource"]
    error = await _rejected(session_factory, bundle, on_file)
    assert (error.index, error.field) == (5, "entry[5].resource")


async def test_a_patient_without_a_name_is_rejected(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    bundle = _fresh_copy(samples)
    index = _index_of(bundle, "Patient")
    del bundle["entry"][index]["resource"]["name"]
    error = await _rejected(session_factory, bundle, on_file)
    assert (error.index, error.field) == (index, f"entry[{index}].resource.name")
    assert str(error) == f"entry[{index}].resource.name: required"


async def test_a_patient_with_only_a_prefix_has_no_name(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    bundle = _fresh_copy(samples)
    index = _index_of(bundle, "Patient")
    bundle["entry"][index]["resource"]["name"] = [{"prefix": ["Ms."]}]
    error = await _rejected(session_factory, bundle, on_file)
    assert error.field == f"entry[{index}].resource.name"


async def test_a_patient_without_a_birth_date_is_rejected(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    bundle = _fresh_copy(samples)
    index = _index_of(bundle, "Patient")
    bundle["entry"][index]["resource"]["birthDate"] = "13/03/1996"
    error = await _rejected(session_factory, bundle, on_file)
    assert error.field == f"entry[{index}].resource.birthDate"


@pytest.mark.parametrize("reference", [
    "urn:uuid:00000000-0000-4000-8000-000000000000",
    "Patient/no-such-patient",
])
async def test_a_reference_to_nothing_is_rejected_before_anything_is_written(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int], reference: str,
) -> None:
    bundle = _fresh_copy(samples)
    index = _index_of(bundle, "Observation", last=True)  # every entry before it is valid
    bundle["entry"][index]["resource"]["subject"] = {"reference": reference}
    error = await _rejected(session_factory, bundle, on_file)
    assert (error.index, error.field) == (index, f"entry[{index}].resource.subject")
    assert reference in error.message


async def test_a_relative_reference_to_a_row_on_file_resolves(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    carmelo = samples["Carmelo_Streich_4026988c-ab06-4635-8c53-86cbad7b1c56.json"]["entry"][0]
    bundle = _fresh_copy(samples)
    index = _index_of(bundle, "Observation", last=True)
    bundle["entry"][index]["resource"]["subject"] = {
        "reference": f"Patient/{carmelo['resource']['id']}"}
    async with session_factory() as session:
        summary = await import_bundle(session, bundle)
    assert summary.created["Observation"] == 20


@BOTH_BACKENDS
async def test_a_slot_clashing_with_one_on_file_rolls_back_the_whole_bundle(
    session_factory: Any, on_file: dict[str, int],
) -> None:
    today = date(2026, 11, 25)
    async with session_factory() as session:
        await import_bundle(session, build_demo_bundle(today))
        await session.commit()
        before = await count_rows(session)
    clash = build_demo_bundle(today)
    clash["entry"][0]["resource"]["name"] = "Renamed Clinic"  # an update that must not stick
    slot = next(e for e in clash["entry"]
                if e["resource"]["resourceType"] == "Slot" and e["resource"]["status"] == "free")
    slot["resource"]["id"] = "another-slot-same-start"
    slot["fullUrl"] = "urn:uuid:another-slot-same-start"
    error = await _rejected(session_factory, clash, before)
    assert error.field == "entry"
    assert "on file" in error.message
    async with session_factory() as session:
        clinic = (await session.exec(select(Organization).where(
            Organization.fhir_id == clash["entry"][0]["resource"]["id"]))).one()
    assert clinic.name == "Riverside Community Clinic"


# --- strings and ids as FHIR defines them (security review, finding 11) -------

def _patient_index(bundle: dict[str, Any]) -> int:
    return _index_of(bundle, "Patient")


@BOTH_BACKENDS
async def test_a_lone_surrogate_in_a_family_name_is_rejected_naming_the_field(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    bundle = _fresh_copy(samples)
    index = _patient_index(bundle)
    bundle["entry"][index]["resource"]["name"][0]["family"] = json.loads('"\\ud800"')
    error = await _rejected(session_factory, bundle, on_file)
    assert (error.index, error.field) == (index, f"entry[{index}].resource.name[0].family")
    assert "lone surrogate (U+D800)" in error.message
    str(error).encode("utf-8")  # the message itself can be printed


@BOTH_BACKENDS
async def test_a_nul_in_a_patient_id_is_rejected_on_both_databases(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    bundle = _fresh_copy(samples)
    index = _patient_index(bundle)
    bundle["entry"][index]["resource"]["id"] = "n\u0000ul"
    error = await _rejected(session_factory, bundle, on_file)
    assert (error.index, error.field) == (index, f"entry[{index}].resource.id")
    assert "control character (U+0000)" in error.message


@BOTH_BACKENDS
async def test_a_patient_id_of_a_hundred_thousand_characters_is_rejected_without_echoing_it(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    bundle = _fresh_copy(samples)
    index = _patient_index(bundle)
    bundle["entry"][index]["resource"]["id"] = "a" * 100_000
    error = await _rejected(session_factory, bundle, on_file)
    assert (error.index, error.field) == (index, f"entry[{index}].resource.id")
    assert "1 to 64 letters, digits" in error.message
    assert len(str(error)) < 200


def _set(path: str, value: object, rtype: str = "Observation") -> Any:
    """A change to the first entry of ``rtype``: sets the dotted ``path`` (list
    indexes as numbers) inside its resource; returns the expected field."""
    def change(bundle: dict[str, Any]) -> str:
        index = _index_of(bundle, rtype)
        node: Any = bundle["entry"][index]["resource"]
        parts = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parts[:-1]:
            if isinstance(part, str) and part not in node:
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
        shown = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
        return f"entry[{index}].resource.{shown}"
    return change


def _contained_medication(bundle: dict[str, Any]) -> str:
    """A MedicationStatement naming its drug through a contained Medication whose code is not a concept."""
    patient = bundle["entry"][_patient_index(bundle)]["resource"]["id"]
    bundle["entry"].append({"resource": {
        "resourceType": "MedicationStatement", "id": "s-contained", "status": "active",
        "subject": {"reference": f"Patient/{patient}"},
        "contained": [{"resourceType": "Medication", "id": "med", "code": "not a concept"}],
        "medicationReference": {"reference": "#med"}}})
    return f"entry[{len(bundle['entry']) - 1}].resource.contained[0].code"


def _claim_with(value: str) -> Any:
    def change(bundle: dict[str, Any]) -> str:
        index = _index_of(bundle, "Claim")
        bundle["entry"][index]["resource"]["status"] = value
        return f"entry[{index}].resource.status"
    return change


def _key_with_nul(bundle: dict[str, Any]) -> str:
    index = _index_of(bundle, "Encounter")
    bundle["entry"][index]["resource"]["period"]["st\u0000art"] = "2020-01-01"
    return f"entry[{index}].resource.period"


def _full_url_with(value: str) -> Any:
    def change(bundle: dict[str, Any]) -> str:
        index = _index_of(bundle, "Condition") if any(
            e["resource"]["resourceType"] == "Condition" for e in bundle["entry"]) else 1
        bundle["entry"][index]["fullUrl"] = value
        return f"entry[{index}].fullUrl"
    return change


def _full_url_only(bundle: dict[str, Any]) -> str:
    index = _index_of(bundle, "Observation")
    del bundle["entry"][index]["resource"]["id"]
    bundle["entry"][index]["fullUrl"] = "urn:uuid:" + "f" * 65
    return f"entry[{index}].fullUrl"


@pytest.mark.parametrize(("change", "message"), [
    pytest.param(_set("valueString", "\x1b[31mred"), "U+001B", id="escape-in-a-value"),
    pytest.param(_set("code.coding.0.display", "bell\x07"), "U+0007", id="bell-in-a-coding"),
    pytest.param(_set("method.text", "\x00"), "U+0000", id="nul-in-an-element-the-store-ignores"),
    pytest.param(_claim_with("act\x00ive"), "U+0000", id="nul-in-a-resource-type-the-store-skips"),
    pytest.param(_set("valueQuantity.value", float("nan")), "finite", id="nan-quantity"),
    pytest.param(_set("valueQuantity.value", float("inf")), "finite", id="infinite-quantity"),
    pytest.param(_key_with_nul, "element name", id="nul-in-an-element-name"),
    pytest.param(_full_url_with("urn:uuid:\ud83d"), "U+D83D", id="lone-surrogate-in-a-fullUrl"),
    pytest.param(_full_url_only, "1 to 64", id="fullUrl-tail-too-long-for-an-id"),
    pytest.param(_set("id", "has space", rtype="Encounter"), "1 to 64", id="space-in-an-id"),
    pytest.param(_set("id", "", rtype="Encounter"), "1 to 64", id="empty-id"),
    pytest.param(_set("id", "a/b", rtype="Claim"), "1 to 64", id="slash-in-a-skipped-resource-id"),
    pytest.param(_contained_medication, "valid dictionary", id="contained-medication-of-the-wrong-shape"),
])
async def test_bad_strings_numbers_and_ids_anywhere_are_rejected_before_any_write(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
    change: Any, message: str,
) -> None:
    bundle = _fresh_copy(samples)
    field = change(bundle)
    error = await _rejected(session_factory, bundle, on_file)
    assert error.field == field
    assert message in error.message


async def test_tabs_line_breaks_and_characters_beyond_the_basic_plane_are_kept(
    session_factory: Any, samples: dict[str, Any], on_file: dict[str, int],
) -> None:
    """Guard against over-refusal: FHIR allows tab, LF and CR, and a JSON
    surrogate *pair* is one valid character."""
    bundle = _fresh_copy(samples)
    index = _index_of(bundle, "Observation")
    text = json.loads('"line one\\r\\nline\\ttwo \\ud83d\\ude00"')
    bundle["entry"][index]["resource"].pop("valueQuantity", None)
    bundle["entry"][index]["resource"]["valueString"] = text
    async with session_factory() as session:
        await import_bundle(session, bundle)
        await session.commit()
    async with session_factory() as session:
        stored = (await session.exec(select(Observation).where(
            Observation.fhir_id == bundle["entry"][index]["resource"]["id"]))).one()
    assert stored.value_string == "line one\r\nline\ttwo \U0001f600"


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RTC_")}
    environ["RTC_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "rtc_server", *args], env=environ, capture_output=True,
        text=True, timeout=120, check=False,
    )


def test_the_import_command_answers_a_lone_surrogate_with_one_rejection_line(tmp_path: Path) -> None:
    """The review's reproduction: a JSON escape for a lone surrogate in a file."""
    path = tmp_path / "surrogate.json"
    path.write_text(
        '{"resourceType":"Bundle","type":"collection","entry":[{"resource":{'
        '"resourceType":"Patient","id":"p1","name":[{"family":"\\ud800","given":["Ann"]}],'
        '"birthDate":"1990-01-01"}}]}', encoding="ascii",
    )
    result = _run_cli(tmp_path, "import-fhir", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{path}: rejected: entry[0].resource.name[0].family: contains a lone surrogate" in result.stderr
