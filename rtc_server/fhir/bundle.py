"""Reading a FHIR R4 Bundle into typed entries, or failing with the field to fix.

Validation happens here, before anything touches the database: an error names
the entry and field (``entry[12].resource.birthDate``) so a person can find it
in a file of thousands of lines.

Every string anywhere in the bundle (known elements or not, keys included) is
checked as FHIR defines strings: no control characters but tab, line feed and
carriage return, and no lone surrogates (``"\\ud800"`` decodes to one, and
neither SQLite nor PostgreSQL can store it); numbers must be finite (Python's
JSON reader accepts ``NaN``). Resource ids follow FHIR's ``id`` type. Error
messages name the code point or rule, never the offending text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rtc_server.errors import InvalidInput
from rtc_server.fhir.resources import STORED, Medication, Resource

BUNDLE_TYPES = frozenset({"transaction", "batch", "collection", "searchset"})
#: FHIR's ``id`` datatype: 1-64 letters, digits, '-' and '.'.
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


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


def validation_error(index: int, exc: ValidationError, within: str = "") -> BundleError:
    """The first error of a pydantic validation of entry ``index``'s resource
    (or of the part of it at path ``within``, such as ``contained[0]``)."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        message = "required"
    path = _loc_path(loc)
    if within:
        path = within + (path if path.startswith("[") or not path else f".{path}")
    return BundleError(message, index=index, field=entry_field(index, path))


def _bad_text(text: str) -> str | None:
    found = _BAD_TEXT.search(text)
    if found is None:
        return None
    point = f"U+{ord(found.group()):04X}"
    if found.group() >= "\ud800":
        return f"contains a lone surrogate ({point}), which is not valid Unicode"
    return f"contains a control character ({point}); only tab, line feed and carriage return are allowed"


def check_values(value: object, where: str, index: int | None = None) -> None:
    """Refuse a string with a control character or a lone surrogate, or a
    number that is not finite, anywhere inside ``value`` (whose path is
    ``where``). Iterative, so any nesting depth is safe."""
    stack: list[tuple[object, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        problem = None
        if isinstance(item, str):
            problem = _bad_text(item)
        elif isinstance(item, float):
            problem = None if math.isfinite(item) else "must be a finite number"
        elif isinstance(item, dict):
            for key in item:
                if isinstance(key, str) and (bad := _bad_text(key)) is not None:
                    raise BundleError(f"an element name {bad}", index=index, field=path)
            prefix = f"{path}." if path else ""
            stack.extend((v, f"{prefix}{k}") for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(item))))
        if problem is not None:
            raise BundleError(problem, index=index, field=path or "<bundle>")


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def is_fhir_id(value: object) -> bool:
    return isinstance(value, str) and FHIR_ID.fullmatch(value) is not None


_NOT_AN_ID = "must be a FHIR id: 1 to 64 letters, digits, '-' or '.'"


def _fhir_id(index: int, resource: dict[str, Any], full_url: str | None) -> str:
    """The resource's id; else the tail of its fullUrl (urn:uuid:<id>, .../Type/<id>)."""
    rid = resource.get("id")
    if rid is not None:
        if not is_fhir_id(rid):
            raise BundleError(_NOT_AN_ID, index=index, field=entry_field(index, "id"))
        assert isinstance(rid, str)
        return rid
    if full_url:
        tail = full_url.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        if tail:
            if not is_fhir_id(tail):
                raise BundleError(
                    "the resource has no id and this does not end in one "
                    "(1 to 64 letters, digits, '-' or '.')",
                    index=index, field=f"entry[{index}].fullUrl",
                )
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

    check_values({k: v for k, v in data.items() if k != "entry"}, "")

    parsed = ParsedBundle(type=bundle_type, entries=[], stored=[], medications={}, skipped=[])
    seen: dict[tuple[str, str], int] = {}
    for index, raw in enumerate(raw_entries):
        if not isinstance(raw, dict) or not isinstance(raw.get("resource"), dict):
            raise BundleError("entry has no resource", index=index, field=f"entry[{index}].resource")
        check_values(raw, f"entry[{index}]", index)
        resource = raw["resource"]
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            raise BundleError("required", index=index, field=entry_field(index, "resourceType"))
        full_url = raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None
        request = raw.get("request") if isinstance(raw.get("request"), dict) else {}
        model = STORED.get(rtype)
        if request.get("method") == "DELETE" or (model is None and rtype != "Medication"):
            rid = resource.get("id")
            if rid is not None and not is_fhir_id(rid):
                raise BundleError(_NOT_AN_ID, index=index, field=entry_field(index, "id"))
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
            raise validation_error(index, exc) from None
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
