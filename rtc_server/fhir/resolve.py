"""Reference resolution for one bundle.

A reference is looked for first among the bundle's own entries (by ``fullUrl``,
by ``Type/id``, or for a conditional reference ``Type?identifier=system|value``
by the entries' identifiers), then among rows already on file (by ``fhir_id``,
or by identifier through ``fhir_identifier``). Database lookups are batched: one
query per table, whatever the number of references.

Conditional references to a Practitioner or Organization that nothing matches
become *placeholders*: Synthea patient bundles point at practitioners and
organizations that live in ``practitionerInformation.json`` /
``hospitalInformation.json``, and those files may be imported before or after
the patients. The placeholder row carries only the identifier; when the real
resource is imported later it adopts the placeholder (same row id), so every
reference made through it stays valid. Any other reference that resolves to
nothing is a ``BundleError``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl

from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.fhir.bundle import BundleError, ParsedBundle, ParsedEntry, entry_field, shown
from rtc_server.fhir.types import Reference
from rtc_server.records import models

TABLE_FOR: dict[str, type[SQLModel]] = {
    "Organization": models.Organization,
    "Practitioner": models.Practitioner,
    "Patient": models.Patient,
    "Encounter": models.Encounter,
    "Condition": models.Condition,
    "Observation": models.Observation,
    "DiagnosticReport": models.DiagnosticReport,
    "MedicationRequest": models.Medication,
    "MedicationStatement": models.Medication,
    "CarePlan": models.CarePlan,
    "Immunization": models.Immunization,
    "AllergyIntolerance": models.AllergyIntolerance,
    "Schedule": models.Schedule,
    "Slot": models.Slot,
    "Appointment": models.Appointment,
}
IDENTIFIED = ("Patient", "Practitioner", "Organization")  # kept in fhir_identifier
PLACEHOLDER_TYPES = ("Practitioner", "Organization")
CHUNK = 500  # ids per IN (...) clause
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class EntryTarget:
    resource_type: str
    index: int


@dataclass(frozen=True, slots=True)
class RowTarget:
    resource_type: str
    row_id: int


@dataclass(frozen=True, slots=True)
class PlaceholderTarget:
    resource_type: str
    system: str
    value: str

    @property
    def fhir_id(self) -> str:
        return f"placeholder:{self.system}|{self.value}"


Target = EntryTarget | RowTarget | PlaceholderTarget


@dataclass(slots=True)
class _Pending:
    index: int
    field: str
    reference: str
    types: tuple[str, ...]
    fhir_id: str | None = None  # look up by fhir_id...
    identifier: tuple[str | None, str] | None = None  # ...or by (system, value)


def chunks(items: list[_T]) -> list[list[_T]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def identifiers_of(raw_resource: dict[str, object]) -> list[tuple[str, str]]:
    """(system, value) pairs of a resource's identifiers; system may be ""."""
    found: list[tuple[str, str]] = []
    idents = raw_resource.get("identifier")
    for ident in idents if isinstance(idents, list) else []:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str) and ident["value"]:
            system = ident.get("system")
            found.append((system if isinstance(system, str) else "", ident["value"]))
    return found


class Resolver:
    """Collects the references of one bundle, resolves them, and answers
    ``target(index, field)`` while the importer writes rows."""

    def __init__(self, bundle: ParsedBundle) -> None:
        self._by_url: dict[str, ParsedEntry] = {}
        self._by_id: dict[tuple[str, str], ParsedEntry] = {}
        self._by_ident: dict[tuple[str, str, str], ParsedEntry] = {}
        self._by_value: dict[tuple[str, str], ParsedEntry] = {}
        for entry in bundle.entries:
            if entry.full_url:
                self._by_url.setdefault(entry.full_url, entry)
            if entry.fhir_id:
                self._by_id.setdefault((entry.resource_type, entry.fhir_id), entry)
            for system, value in identifiers_of(entry.raw["resource"]):
                self._by_ident.setdefault((entry.resource_type, system, value), entry)
                self._by_value.setdefault((entry.resource_type, value), entry)
        self._targets: dict[tuple[int, str], Target] = {}
        self._pending: list[_Pending] = []
        self.placeholders: dict[PlaceholderTarget, None] = {}  # ordered set

    # -- collecting ---------------------------------------------------------
    def add(
        self, index: int, field: str, ref: Reference | None, types: tuple[str, ...], *,
        required: bool = False,
    ) -> None:
        where = entry_field(index, field)
        text = (ref.reference or "").strip() if ref is not None else ""
        if not text:
            if required:
                raise BundleError("a reference is required", index=index, field=where)
            return
        if text.startswith("#"):
            return  # contained resources are read by the resource that holds them
        kind_type, fhir_id, identifier = self._parse(text, index, where)
        if kind_type is not None and kind_type not in types:
            if required:
                raise BundleError(f"must reference a {' or '.join(types)}", index=index, field=where)
            return
        entry = self._in_bundle(text, kind_type, fhir_id, identifier)
        if entry is not None:
            if entry.resource_type in types and entry.resource is not None:
                self._targets[(index, field)] = EntryTarget(entry.resource_type, entry.index)
            elif required:
                raise BundleError(f"must reference a {' or '.join(types)}", index=index, field=where)
            return
        if fhir_id is None and identifier is None:
            raise BundleError(f"{shown(text)} refers to nothing in this bundle", index=index, field=where)
        lookup_types = (kind_type,) if kind_type else types
        lookup_types = tuple(t for t in lookup_types if t in TABLE_FOR)
        if not lookup_types:
            return
        self._pending.append(_Pending(index, field, text, lookup_types, fhir_id, identifier))

    def _parse(
        self, text: str, index: int, where: str,
    ) -> tuple[str | None, str | None, tuple[str | None, str] | None]:
        """(resource type or None, fhir_id, identifier) named by a reference."""
        if "?" in text:
            rtype, _, query = text.partition("?")
            params = dict(parse_qsl(query))
            if set(params) != {"identifier"} or not params["identifier"]:
                raise BundleError(
                    "only Type?identifier=system|value conditional references are supported",
                    index=index, field=where,
                )
            system, bar, value = params["identifier"].rpartition("|")
            return rtype.rsplit("/", 1)[-1], None, ((system if bar else None), value)
        if text.startswith("urn:uuid:"):
            return None, text.removeprefix("urn:uuid:"), None
        if text.startswith("urn:"):
            return None, None, None
        parts = text.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2 and parts[-2] and parts[-1]:
            return parts[-2], parts[-1], None
        raise BundleError(f"{shown(text)} is not a reference", index=index, field=where)

    def _in_bundle(
        self, text: str, rtype: str | None, fhir_id: str | None,
        identifier: tuple[str | None, str] | None,
    ) -> ParsedEntry | None:
        if text in self._by_url:
            return self._by_url[text]
        if rtype and fhir_id:
            return self._by_id.get((rtype, fhir_id))
        if rtype and identifier:
            system, value = identifier
            if system is None:
                return self._by_value.get((rtype, value))
            return self._by_ident.get((rtype, system, value))
        return None

    def peek(self, text: str | None) -> ParsedEntry | None:
        """The bundle entry a reference names, if any; never raises."""
        if not text:
            return None
        try:
            rtype, fhir_id, identifier = self._parse(text, 0, "")
        except BundleError:
            return None
        return self._in_bundle(text, rtype, fhir_id, identifier)

    # -- resolving ------------------------------------------------------------
    async def resolve(self, session: AsyncSession) -> None:
        """Look the remaining references up on file, in one query per table.
        Raises BundleError for the first (in entry order) that names nothing."""
        by_fhir_id: dict[str, set[str]] = defaultdict(set)
        by_value: dict[str, set[str]] = defaultdict(set)
        for item in self._pending:
            for rtype in item.types:
                if item.fhir_id:
                    by_fhir_id[rtype].add(item.fhir_id)
                elif item.identifier and rtype in IDENTIFIED:
                    by_value[rtype].add(item.identifier[1])
        found_ids = await _rows_by_fhir_id(session, by_fhir_id)
        found_idents = await rows_by_identifier(session, by_value)
        for item in self._pending:
            target = self._found(item, found_ids, found_idents)
            if target is None:
                raise BundleError(
                    f"{shown(item.reference)} refers to nothing in this bundle or on file",
                    index=item.index, field=entry_field(item.index, item.field),
                )
            self._targets[(item.index, item.field)] = target
        self._pending.clear()

    def _found(
        self, item: _Pending,
        found_ids: dict[tuple[str, str], int],
        found_idents: dict[tuple[str, str], dict[str, int]],
    ) -> Target | None:
        for rtype in item.types:
            if item.fhir_id:
                row_id = found_ids.get((rtype, item.fhir_id))
                if row_id is not None:
                    return RowTarget(rtype, row_id)
            elif item.identifier:
                system, value = item.identifier
                systems = found_idents.get((rtype, value), {})
                row_id = next(iter(systems.values()), None) if system is None else systems.get(system)
                if row_id is not None:
                    return RowTarget(rtype, row_id)
        if item.identifier and item.types[0] in PLACEHOLDER_TYPES:
            system, value = item.identifier
            placeholder = PlaceholderTarget(item.types[0], system or "", value)
            self.placeholders[placeholder] = None
            return placeholder
        return None

    def target(self, index: int, field: str) -> Target | None:
        return self._targets.get((index, field))


async def _rows_by_fhir_id(
    session: AsyncSession, wanted: dict[str, set[str]],
) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for rtype, ids in wanted.items():
        table = TABLE_FOR[rtype]
        for chunk in chunks(sorted(ids)):
            query = select(table.id, table.fhir_id).where(table.fhir_id.in_(chunk))  # type: ignore[attr-defined]
            for row_id, fhir_id in (await session.exec(query)).all():
                found[(rtype, fhir_id)] = row_id
    return found


async def rows_by_identifier(
    session: AsyncSession, wanted: dict[str, set[str]],
) -> dict[tuple[str, str], dict[str, int]]:
    """{(type, value): {system: row id}} for identifier values on file."""
    found: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    ident = models.FhirIdentifier
    for rtype, values in wanted.items():
        for chunk in chunks(sorted(values)):
            query = select(ident.system, ident.value, ident.row_id).where(
                ident.resource_type == rtype, ident.value.in_(chunk)  # type: ignore[attr-defined]
            )
            for system, value, row_id in (await session.exec(query)).all():
                found[(rtype, value)][system] = row_id
    return found
