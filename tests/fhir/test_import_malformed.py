"""Malformed bundles fail with the entry and field to fix, and write nothing."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir_helpers import BOTH_BACKENDS, count_rows
from sqlmodel import select

from rtc_server.demo import build_demo_bundle
from rtc_server.errors import InvalidInput
from rtc_server.fhir import BundleError, import_bundle, load_bundle_file
from rtc_server.records.models import Organization

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
