"""Importing a FHIR R4 Bundle into the records store.

``import_bundle`` validates the whole bundle and resolves every reference it
uses *before* writing, so a malformed bundle raises ``BundleError`` with the
session untouched. Writes then happen inside a savepoint: a clash with rows on
file (a slot already taken by another slot id) also raises ``BundleError`` and
leaves nothing behind. The caller commits.

Rows are matched by ``fhir_id`` (practitioners and organizations also by
identifier, to adopt placeholders, see ``rtc_server.fhir.resolve``), so a
re-import updates rows in place: the second run reports only updates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.fhir import mapping
from rtc_server.fhir import resources as r
from rtc_server.fhir.bundle import (
    BundleError,
    ParsedBundle,
    ParsedEntry,
    entry_field,
    load_bundle_file,
    parse_bundle,
    shown,
    validation_error,
)
from rtc_server.fhir.resolve import (
    IDENTIFIED,
    PLACEHOLDER_TYPES,
    TABLE_FOR,
    EntryTarget,
    PlaceholderTarget,
    Resolver,
    RowTarget,
    Target,
    chunks,
    identifiers_of,
    rows_by_identifier,
)
from rtc_server.fhir.types import CodeableConcept, first_label
from rtc_server.records import models

__all__ = ["BundleError", "ImportSummary", "import_bundle", "load_bundle_file"]


@dataclass
class ImportSummary:
    """What one import did, counted by FHIR resourceType. Placeholder
    practitioners/organizations count as created; Medication resources (folded
    into the requests that name them) and unused types count as skipped."""

    source: str = "<bundle>"
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    #: Patients whose record this import created or changed (for the audit log).
    patient_ids: set[int] = field(default_factory=set)

    def lines(self) -> list[str]:
        order = {rtype: i for i, rtype in enumerate(r.STORED)}
        kinds = sorted(set(self.created) | set(self.updated), key=lambda t: order.get(t, 99))
        out = [f"{t}: {self.created[t]} created, {self.updated[t]} updated" for t in kinds]
        if self.skipped:
            out.append("skipped: " + ", ".join(f"{t} {n}" for t, n in sorted(self.skipped.items())))
        return out


async def import_bundle(
    session: AsyncSession, bundle: object, *, source: str = "<bundle>",
    actor_id: int | None = None,
) -> ImportSummary:
    """Validate, then upsert every stored resource of ``bundle`` (decoded JSON),
    writing one ``records.import`` audit row per patient whose record it touched
    (``actor_id`` None means the command line).

    Raises BundleError (nothing written) for a malformed bundle or a reference
    to nothing. Flushes but does not commit.
    """
    parsed = parse_bundle(bundle)
    resolver = Resolver(parsed)
    for entry in parsed.stored:
        assert entry.resource is not None
        for path, ref, types, required in entry.resource.links():
            resolver.add(entry.index, path, ref, types, required=required)
    extras = {e.index: _extra(e, parsed, resolver) for e in parsed.stored}
    await resolver.resolve(session)
    slot_owner = await _check_scheduling(session, parsed, resolver)

    summary = ImportSummary(source=source)
    summary.skipped.update(e.resource_type for e in parsed.skipped)
    writer = _Writer(session, parsed, resolver, extras, slot_owner, summary)
    try:
        async with session.begin_nested():
            await writer.run()
    except IntegrityError as exc:
        raise BundleError(
            "clashes with records already on file (for example a slot already taken)",
            field="entry",
        ) from exc
    summary.patient_ids = writer.patient_ids()
    for patient_id in sorted(summary.patient_ids):
        await audit.record(session, action="records.import", actor_id=actor_id,
                           actor_role=None if actor_id else "system", patient_id=patient_id,
                           resource="fhir-bundle")
    return summary


def _extra(entry: ParsedEntry, parsed: ParsedBundle, resolver: Resolver) -> Any:
    """Per-resource inputs that are not plain references: a medication's drug,
    a care plan's conditions as text."""
    res = entry.resource
    if isinstance(res, r.MedicationRequest | r.MedicationStatement):
        reason = first_label(res.reasonCode)
        for ref in res.reasonReference:
            target = resolver.peek(ref.reference)
            if target is not None and isinstance(target.resource, r.Condition):
                reason = reason or target.resource.code.label
            reason = reason or ref.display
        return mapping.MedicationContext(_drug(entry, res, parsed, resolver), reason)
    if isinstance(res, r.CarePlan):
        names = []
        for ref in res.addresses:
            target = resolver.peek(ref.reference)
            if target is not None and isinstance(target.resource, r.Condition):
                names.append(target.resource.code.label)
            elif ref.display:
                names.append(ref.display)
        return "; ".join(dict.fromkeys(n for n in names if n)) or None
    return None


def _drug(
    entry: ParsedEntry, res: r.MedicationRequest | r.MedicationStatement,
    parsed: ParsedBundle, resolver: Resolver,
) -> mapping.Drug:
    if res.medicationCodeableConcept is not None:
        return res.medicationCodeableConcept.first()
    ref = res.medicationReference
    if ref is None or not (ref.reference or ref.display):
        raise BundleError(
            "required (medicationCodeableConcept or medicationReference)",
            index=entry.index, field=entry_field(entry.index, "medicationCodeableConcept"),
        )
    code: CodeableConcept | None = None
    if ref.reference and ref.reference.startswith("#"):
        for i, contained in enumerate(res.contained):
            if contained.get("resourceType") == "Medication" and contained.get("id") == ref.reference[1:]:
                try:
                    code = r.Medication.model_validate(contained).code
                except ValidationError as exc:
                    raise validation_error(entry.index, exc, f"contained[{i}]") from None
    elif ref.reference:
        target = resolver.peek(ref.reference)
        if target is not None and target.index in parsed.medications:
            code = parsed.medications[target.index].code
    if code is not None:
        return code.first()
    if ref.display:
        return None, None, ref.display
    raise BundleError(
        f"{shown(ref.reference)} names no Medication in this bundle",
        index=entry.index, field=entry_field(entry.index, "medicationReference"),
    )


async def _check_scheduling(
    session: AsyncSession, parsed: ParsedBundle, resolver: Resolver,
) -> dict[int, Target]:
    """Schedules and appointments must name a practitioner (and a patient), and
    a bundle may not hold two slots of one practitioner at the same start.
    Returns each slot's practitioner target."""
    schedule_owner: dict[int, Target] = {}
    for entry in parsed.stored:
        res = entry.resource
        if isinstance(res, r.Schedule):
            owner = _first_target(resolver, entry.index, "actor", len(res.actor), "Practitioner")
            if owner is None:
                raise BundleError("needs a Practitioner actor", index=entry.index,
                                  field=entry_field(entry.index, "actor"))
            schedule_owner[entry.index] = owner
        elif isinstance(res, r.Appointment):
            for rtype in ("Patient", "Practitioner"):
                if _first_target(resolver, entry.index, "participant", len(res.participant),
                                 rtype, suffix=".actor") is None:
                    raise BundleError(f"needs a {rtype} participant", index=entry.index,
                                      field=entry_field(entry.index, "participant"))

    slots = [e for e in parsed.stored if isinstance(e.resource, r.Slot)]
    on_file = [t.row_id for e in slots
               if isinstance(t := resolver.target(e.index, "schedule"), RowTarget)]
    owners_on_file: dict[int, int] = {}
    for chunk in chunks(sorted(set(on_file))):
        query = select(models.Schedule.id, models.Schedule.practitioner_id).where(
            models.Schedule.id.in_(chunk)  # type: ignore[union-attr]
        )
        owners_on_file.update(dict((await session.exec(query)).all()))
    slot_owner: dict[int, Target] = {}
    seen: dict[tuple[Target, Any], int] = {}
    for entry in slots:
        assert isinstance(entry.resource, r.Slot)
        target = resolver.target(entry.index, "schedule")
        if isinstance(target, EntryTarget):
            owner = schedule_owner[target.index]
        elif isinstance(target, RowTarget):
            owner = RowTarget("Practitioner", owners_on_file[target.row_id])
        else:  # pragma: no cover - schedule is a required reference
            raise BundleError("required", index=entry.index,
                              field=entry_field(entry.index, "schedule"))
        key = (owner, entry.resource.start)
        if key in seen:
            raise BundleError(f"same practitioner and start as entry[{seen[key]}]",
                              index=entry.index, field=entry_field(entry.index, "start"))
        seen[key] = entry.index
        slot_owner[entry.index] = owner
    return slot_owner


def _first_target(
    resolver: Resolver, index: int, name: str, count: int, rtype: str, suffix: str = "",
) -> Target | None:
    for i in range(count):
        target = resolver.target(index, f"{name}[{i}]{suffix}")
        if target is not None and target.resource_type == rtype:
            return target
    return None


class _Links:
    """``mapping.Links`` for one entry: reference field -> (type, row id)."""

    __slots__ = ("_index", "_writer")

    def __init__(self, writer: _Writer, index: int) -> None:
        self._writer = writer
        self._index = index

    def typed(self, field: str) -> tuple[str, int] | None:
        return self._writer.row_of(self._writer.resolver.target(self._index, field))


class _Writer:
    def __init__(
        self, session: AsyncSession, parsed: ParsedBundle, resolver: Resolver,
        extras: dict[int, Any], slot_owner: dict[int, Target], summary: ImportSummary,
    ) -> None:
        self.session = session
        self.parsed = parsed
        self.resolver = resolver
        self.extras = extras
        self.slot_owner = slot_owner
        self.summary = summary
        self.rows: dict[int, Any] = {}
        self.placeholders: dict[PlaceholderTarget, Any] = {}

    def row_of(self, target: Target | None) -> tuple[str, int] | None:
        if target is None:
            return None
        if isinstance(target, RowTarget):
            return target.resource_type, target.row_id
        row = (self.rows.get(target.index) if isinstance(target, EntryTarget)
               else self.placeholders.get(target))
        if row is None or row.id is None:
            return None
        return target.resource_type, row.id

    def patient_ids(self) -> set[int]:
        ids = set()
        for row in self.rows.values():
            if isinstance(row, models.Patient) and row.id is not None:
                ids.add(row.id)
            elif getattr(row, "patient_id", None) is not None:
                ids.add(row.patient_id)
        return ids

    async def run(self) -> None:
        for rtype in r.STORED:
            entries = [e for e in self.parsed.stored if e.resource_type == rtype]
            placeholders = [p for p in self.resolver.placeholders if p.resource_type == rtype]
            if entries or placeholders:
                await self._write_type(rtype, entries, placeholders)
        await self._link_report_results()
        await self.session.flush()

    async def _write_type(
        self, rtype: str, entries: list[ParsedEntry], placeholders: list[PlaceholderTarget],
    ) -> None:
        table = TABLE_FOR[rtype]
        existing = await self._existing(table, [e.fhir_id for e in entries])
        if rtype in PLACEHOLDER_TYPES:
            await self._adopt_placeholders(rtype, table, entries, existing)
        for entry in entries:
            values = self._values(rtype, entry)
            row = existing.get(entry.fhir_id)
            if row is None:
                row = table(fhir_id=entry.fhir_id, **values)
                self.session.add(row)
                self.summary.created[rtype] += 1
            else:
                for name, value in values.items():
                    if not mapping.unchanged(getattr(row, name), value):
                        setattr(row, name, value)
                self.summary.updated[rtype] += 1
            self.rows[entry.index] = row
        for target in placeholders:
            values = mapping.placeholder_values(rtype, target.system, target.value)
            row = table(fhir_id=target.fhir_id, **values)
            self.session.add(row)
            self.placeholders[target] = row
            self.summary.created[rtype] += 1
        await self.session.flush()
        if rtype in IDENTIFIED:
            await self._register_identifiers(rtype, entries, placeholders)

    def _values(self, rtype: str, entry: ParsedEntry) -> dict[str, Any]:
        res, links = entry.resource, _Links(self, entry.index)
        if rtype in mapping.SIMPLE:
            return mapping.SIMPLE[rtype](res, links)
        extra = self.extras[entry.index]
        if isinstance(res, r.MedicationRequest | r.MedicationStatement):
            return mapping.medication(res, links, extra)
        if isinstance(res, r.CarePlan):
            return mapping.care_plan(res, links, extra)
        assert isinstance(res, r.Slot)
        owner = self.row_of(self.slot_owner[entry.index])
        return mapping.slot(res, links, owner[1] if owner else None)

    async def _existing(self, table: type[SQLModel], fhir_ids: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        column = table.fhir_id  # type: ignore[attr-defined]
        for chunk in chunks(fhir_ids):
            for row in (await self.session.exec(select(table).where(column.in_(chunk)))).all():
                found[row.fhir_id] = row
        return found

    async def _adopt_placeholders(
        self, rtype: str, table: type[SQLModel], entries: list[ParsedEntry],
        existing: dict[str, Any],
    ) -> None:
        """A new practitioner/organization whose identifier names a placeholder
        takes that row over (same id), so references made through it stay valid."""
        missing = [e for e in entries if e.fhir_id not in existing]
        idents = {e.index: identifiers_of(e.raw["resource"]) for e in missing}
        values = {value for pairs in idents.values() for _system, value in pairs}
        if not values:
            return
        on_file = await rows_by_identifier(self.session, {rtype: values})
        row_ids = {
            row_id for pairs in idents.values() for system, value in pairs
            if (row_id := on_file.get((rtype, value), {}).get(system)) is not None
        }
        if not row_ids:
            return
        query = select(table).where(
            table.id.in_(row_ids), table.placeholder.is_(True)  # type: ignore[attr-defined]
        )
        placeholders = {row.id: row for row in (await self.session.exec(query)).all()}
        for entry in missing:
            for system, value in idents[entry.index]:
                row = placeholders.pop(on_file.get((rtype, value), {}).get(system, -1), None)
                if row is not None:
                    row.fhir_id = entry.fhir_id
                    existing[entry.fhir_id] = row
                    break

    async def _register_identifiers(
        self, rtype: str, entries: list[ParsedEntry], placeholders: list[PlaceholderTarget],
    ) -> None:
        """Record each identifier for conditional references; one that already
        names another row keeps naming it."""
        wanted: dict[tuple[str, str], int] = {}
        for entry in entries:
            for key in identifiers_of(entry.raw["resource"]):
                wanted.setdefault(key, self.rows[entry.index].id)
        for target in placeholders:
            wanted.setdefault((target.system, target.value), self.placeholders[target].id)
        if not wanted:
            return
        on_file = await rows_by_identifier(self.session, {rtype: {v for _s, v in wanted}})
        for (system, value), row_id in wanted.items():
            if system not in on_file.get((rtype, value), {}):
                self.session.add(models.FhirIdentifier(
                    resource_type=rtype, system=system, value=value, row_id=row_id,
                ))
        await self.session.flush()

    async def _link_report_results(self) -> None:
        """Point each observation at the report that lists it."""
        on_file: dict[int, list[int]] = {}
        for entry in self.parsed.stored:
            res = entry.resource
            if not isinstance(res, r.DiagnosticReport):
                continue
            report_id = self.rows[entry.index].id
            for i in range(len(res.result)):
                target = self.resolver.target(entry.index, f"result[{i}]")
                if isinstance(target, EntryTarget):
                    self.rows[target.index].report_id = report_id
                elif isinstance(target, RowTarget):
                    on_file.setdefault(report_id, []).append(target.row_id)
        for report_id, ids in on_file.items():
            await self.session.exec(
                update(models.Observation)
                .where(models.Observation.id.in_(ids))  # type: ignore[union-attr]
                .values(report_id=report_id)
            )
