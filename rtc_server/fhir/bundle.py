"""Reading a FHIR R4 Bundle into typed entries, or failing with the field to fix.

Validation happens here, before anything touches the database: an error names
the entry and field (``entry[12].resource.birthDate``) so a person can find it
in a file of thousands of lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rtc_server.errors import InvalidInput
from rtc_server.fhir.resources import STORED, Medication, Resource

BUNDLE_TYPES = frozenset({"transaction", "batch", "collection", "searchset"})


class BundleError(InvalidInput):
    """A bundle that cannot be imported. ``index`` is the entry's position (None
    for the bundle or file itself); ``field`` is the full path, such as
    ``entry[3].resource.name``. Raised before anything is written."""

    def __init__(self, message: str, *, index: int | None = None, field: str = "<bundle>") -> None:
        super().__init__(field, message)
        self.message = message
        self.index = index
        self.field = field
        self.args = (f"{field}: {message}",)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(slots=True)
class ParsedEntry:
    index: int
    resource_type: str
    fhir_id: str
    full_url: str | None
    resource: Resource | None  # None: a type the store does not keep
    raw: dict[str, Any] = field(repr=False)


@dataclass(slots=True)
class ParsedBundle:
    type: str
    entries: list[ParsedEntry]
    stored: list[ParsedEntry]  # entries with a model in STORED, in file order
    medications: dict[int, Medication]  # standalone Medication entries, by index
    skipped: list[ParsedEntry]


def entry_field(index: int, path: str = "") -> str:
    return f"entry[{index}].resource" + (f".{path}" if path else "")


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _first_error(index: int, exc: ValidationError) -> BundleError:
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        message = "required"
    return BundleError(message, index=index, field=entry_field(index, _loc_path(loc)))


def _fhir_id(index: int, resource: dict[str, Any], full_url: str | None) -> str:
    """The resource's id; else the tail of its fullUrl (urn:uuid:<id>, .../Type/<id>)."""
    rid = resource.get("id")
    if isinstance(rid, str) and rid.strip():
        return rid.strip()
    if full_url:
        tail = full_url.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        if tail:
            return tail
    raise BundleError("needs an id or a fullUrl", index=index, field=entry_field(index, "id"))


def parse_bundle(data: object) -> ParsedBundle:
    """Validate a decoded JSON bundle. Raises BundleError on the first problem."""
    if not isinstance(data, dict):
        raise BundleError("a Bundle must be a JSON object", field="<bundle>")
    if data.get("resourceType") != "Bundle":
        raise BundleError(
            f"expected resourceType 'Bundle', found {data.get('resourceType')!r}",
            field="resourceType",
        )
    bundle_type = data.get("type")
    if bundle_type not in BUNDLE_TYPES:
        allowed = ", ".join(sorted(BUNDLE_TYPES))
        raise BundleError(f"Bundle.type must be one of {allowed}", field="type")
    raw_entries = data.get("entry", [])
    if not isinstance(raw_entries, list):
        raise BundleError("must be a list of entries", field="entry")

    parsed = ParsedBundle(type=bundle_type, entries=[], stored=[], medications={}, skipped=[])
    seen: dict[tuple[str, str], int] = {}
    for index, raw in enumerate(raw_entries):
        if not isinstance(raw, dict) or not isinstance(raw.get("resource"), dict):
            raise BundleError("entry has no resource", index=index, field=f"entry[{index}].resource")
        resource = raw["resource"]
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            raise BundleError("required", index=index, field=entry_field(index, "resourceType"))
        full_url = raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None
        request = raw.get("request") if isinstance(raw.get("request"), dict) else {}
        model = STORED.get(rtype)
        if request.get("method") == "DELETE" or (model is None and rtype != "Medication"):
            rid = resource.get("id")
            entry = ParsedEntry(index, rtype, rid if isinstance(rid, str) else "", full_url, None, raw)
            parsed.entries.append(entry)
            parsed.skipped.append(entry)
            continue
        fhir_id = _fhir_id(index, resource, full_url)
        key = (rtype, fhir_id)
        if key in seen:
            raise BundleError(
                f"duplicate {rtype} id (also entry[{seen[key]}])",
                index=index, field=entry_field(index, "id"),
            )
        seen[key] = index
        try:
            validated = (model or Medication).model_validate(resource)
        except ValidationError as exc:
            raise _first_error(index, exc) from None
        if model is None:  # a Medication: read for the drug name, not stored itself
            assert isinstance(validated, Medication)
            parsed.medications[index] = validated
            entry = ParsedEntry(index, rtype, fhir_id, full_url, None, raw)
            parsed.skipped.append(entry)
        else:
            entry = ParsedEntry(index, rtype, fhir_id, full_url, validated, raw)
            parsed.stored.append(entry)
        parsed.entries.append(entry)
    return parsed


def load_bundle_file(path: Path) -> object:
    """Read and decode a bundle file (blocking: call it in a thread)."""
    try:
        with path.open("rb") as fh:
            return json.load(fh)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, oversized numbers
        raise BundleError(f"{path.name} is not valid JSON ({exc})", field="<file>") from None
    except RecursionError:
        raise BundleError(f"{path.name} is nested too deeply", field="<file>") from None
    except OSError as exc:
        raise BundleError(f"cannot read {path.name}: {exc.strerror}", field="<file>") from None
