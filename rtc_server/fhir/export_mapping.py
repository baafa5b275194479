"""From a records row to the FHIR R4 resource that imports back into it.

The inverse of ``rtc_server.fhir.mapping``: each function takes one row and a
``Refs`` (how to point at another exported row) and returns the resource as a
JSON-ready dict holding what the importer reads back into that row's columns,
so re-importing an export reproduces the rows. No I/O here; the queries live in
``rtc_server.fhir.export``.

What the store does not keep is not invented: a unit is exported as the text
the store kept, a care plan's conditions as the names it kept. Code systems are
added only where FHIR binds the element to one system (condition and allergy
statuses, encounter class) or the code belongs to a well-known FHIR code system
(observation categories, interpretations).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Protocol

from rtc_server.db import as_utc
from rtc_server.fhir.mapping import NPI_SYSTEM
from rtc_server.records import models

#: Our extension marking an appointment as a video or in-person visit (the
#: importer reads any URL ending in ``/visit-kind``).
VISIT_KIND_URL = "https://rtc-server.example.org/fhir/StructureDefinition/visit-kind"
TIMEZONE_URL = "http://hl7.org/fhir/StructureDefinition/timezone"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
_IDENTIFIER_TYPES = TERMINOLOGY + "v2-0203"
_KNOWN_CODES: dict[str, tuple[str, frozenset[str]]] = {
    "observation-category": (TERMINOLOGY + "observation-category", frozenset({
        "social-history", "vital-signs", "imaging", "laboratory", "procedure", "survey",
        "exam", "therapy", "activity"})),
    "condition-category": (TERMINOLOGY + "condition-category", frozenset({
        "problem-list-item", "encounter-diagnosis"})),
    "interpretation": (TERMINOLOGY + "v3-ObservationInterpretation", frozenset({
        "H", "HH", "HU", "L", "LL", "LU", "N", "A", "AA", "U", "D", "B", "W", "S", "R", "I",
        "NEG", "POS", "IND", "DET", "ND", "E", "EX", "HX", "LX"})),
}

Json = dict[str, Any]


class Refs(Protocol):
    def to(self, resource_type: str, row_id: int | None) -> Json | None:
        """A FHIR Reference to an exported row, or None when it is not exported."""


# --- datatypes ------------------------------------------------------------------

def _clean(values: Json) -> Json:
    """Drop absent elements: FHIR JSON has no nulls, empty strings or empty lists."""
    return {k: v for k, v in values.items() if v is not None and v != "" and v != []}


def instant(value: datetime | None) -> str | None:
    found = as_utc(value)
    return found.isoformat() if found is not None else None


def _date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def concept(system: str | None, code: str | None, display: str | None) -> Json:
    """A CodeableConcept that the importer reads back as (system, code,
    display). The store keeps the code as the display when there was none, so
    such a display is left out; a display with no code is the concept's text."""
    if not system and not code:
        return {"text": display} if display else {}
    return {"coding": [_clean({"system": system, "code": code,
                               "display": display if display != code else None})]}


def _known(kind: str, code: str | None) -> Json | None:
    """A concept for a stored code, with its system when the code is one of that
    well-known code system's."""
    if not code:
        return None
    system, codes = _KNOWN_CODES[kind]
    return concept(system if code in codes else None, code, None)


def _status(kind: str, code: str | None) -> Json | None:
    return concept(TERMINOLOGY + kind, code, None) if code else None


def _texts(text: str | None) -> list[Json]:
    return [{"text": text}] if text else []


def _period(start: datetime | None, end: datetime | None) -> Json | None:
    return _clean({"start": instant(start), "end": instant(end)}) or None


def _telecom(phone: str | None, email: str | None = None) -> list[Json]:
    points = [("phone", phone), ("email", email)]
    return [{"system": system, "value": value} for system, value in points if value]


def _address(row: models.Patient | models.Organization, use: str | None) -> list[Json]:
    address = _clean({
        "line": [row.address_line] if row.address_line else [],
        "city": row.city, "state": row.state, "postalCode": row.zip,
    })
    return [_clean({"use": use}) | address] if address else []


def _identifier_type(kind: str | None) -> Json | None:
    """The stored identifier type is a v2-0203 code (MR, SS, NPI...) or free text."""
    if not kind:
        return None
    if kind.isascii() and kind.isalpha() and kind.isupper() and len(kind) <= 5:
        return concept(_IDENTIFIER_TYPES, kind, None)
    return {"text": kind}


def _identifiers(stored: list[dict[str, Any]]) -> list[Json]:
    return [
        _clean({"system": item.get("system"), "value": item.get("value"),
                "type": _identifier_type(item.get("type"))})
        for item in stored if item.get("value")
    ]


def _first_as(stored: list[dict[str, Any]], matches: Callable[[dict[str, Any]], bool],
              item: dict[str, Any]) -> list[dict[str, Any]]:
    """``stored`` with ``item`` put first if the importer's rule (the first
    identifier that ``matches``) would not find ``item``'s value: how an MRN or
    NPI kept in its own column survives the round trip."""
    first = next((i for i in stored if matches(i)), None)
    if item.get("value") and (first is None or first.get("value") != item["value"]):
        return [item, *stored]
    return stored


def _resource(resource_type: str, fhir_id: str, **elements: Any) -> Json:
    return {"resourceType": resource_type, "id": fhir_id, **_clean(elements)}


# --- resources --------------------------------------------------------------------

def organization(row: models.Organization, fhir_id: str, refs: Refs) -> Json:
    return _resource(
        "Organization", fhir_id,
        identifier=_identifiers(row.identifiers),
        name=row.name,
        type=_texts(row.kind),
        telecom=_telecom(row.phone),
        address=_address(row, None),
    )


def practitioner(row: models.Practitioner, fhir_id: str, refs: Refs) -> Json:
    name = _clean({
        "family": row.family_name,
        "given": [row.given_name] if row.given_name else [],
        "prefix": [row.prefix] if row.prefix else [],
        "suffix": [row.suffix] if row.suffix else [],
    })
    return _resource(
        "Practitioner", fhir_id,
        identifier=_identifiers(_first_as(
            row.identifiers, lambda i: i.get("system") == NPI_SYSTEM,
            {"system": NPI_SYSTEM, "value": row.npi, "type": None})),
        active=row.active,
        name=[name] if name else [],
        telecom=_telecom(row.phone, row.email),
        gender=row.gender,
        qualification=[{"code": {"text": row.specialty}}] if row.specialty else [],
    )


def patient(row: models.Patient, fhir_id: str, refs: Refs) -> Json:
    name = _clean({
        "use": "official",
        "family": row.family_name,
        "given": [g for g in (row.given_name, row.middle_name) if g],
    })
    return _resource(
        "Patient", fhir_id,
        identifier=_identifiers(_first_as(
            row.identifiers, lambda i: i.get("type") == "MR",
            {"system": None, "value": row.mrn, "type": "MR"})),
        name=[name],
        telecom=_telecom(row.phone, row.email),
        gender=row.gender,
        birthDate=_date(row.birth_date),
        deceasedDateTime=instant(row.deceased_at),
        address=_address(row, "home"),
        generalPractitioner=[ref] if (ref := refs.to("Practitioner", row.primary_practitioner_id))
        else [],
    )


def encounter(row: models.Encounter, fhir_id: str, refs: Refs) -> Json:
    practitioner_ref = refs.to("Practitioner", row.practitioner_id)
    has_type = row.type_code or row.type_display
    return _resource(
        "Encounter", fhir_id,
        status=row.status,
        **{"class": concept(TERMINOLOGY + "v3-ActCode", row.class_code, None)["coding"][0]
           if row.class_code else None},
        type=[concept(None, row.type_code, row.type_display)] if has_type else [],
        subject=refs.to("Patient", row.patient_id),
        participant=[{"individual": practitioner_ref}] if practitioner_ref else [],
        period=_period(row.start, row.end),
        reasonCode=_texts(row.reason),
        serviceProvider=refs.to("Organization", row.organization_id),
    )


def condition(row: models.Condition, fhir_id: str, refs: Refs) -> Json:
    return _resource(
        "Condition", fhir_id,
        clinicalStatus=_status("condition-clinical", row.clinical_status),
        verificationStatus=_status("condition-ver-status", row.verification_status),
        category=[c] if (c := _known("condition-category", row.category)) else [],
        code=concept(row.code_system, row.code, row.display),
        subject=refs.to("Patient", row.patient_id),
        encounter=refs.to("Encounter", row.encounter_id),
        onsetDateTime=instant(row.onset_at),
        abatementDateTime=instant(row.abatement_at),
        recordedDate=instant(row.recorded_at),
    )


def _component(part: dict[str, Any]) -> Json:
    value: Json = {}
    if "unit" in part:  # a quantity (the importer keeps "unit" only for those)
        value["valueQuantity"] = _clean({"value": part.get("value"), "unit": part.get("unit")})
    elif part.get("value_code") is not None:
        value["valueCodeableConcept"] = _clean(
            concept(None, part["value_code"], None) | {"text": part.get("value")})
    elif part.get("value") is not None:
        value["valueString"] = str(part["value"])
    return {"code": concept(None, part.get("code"), part.get("display")), **value}


def observation(row: models.Observation, fhir_id: str, refs: Refs) -> Json:
    value: Json = {}
    if row.value_quantity is not None or row.value_unit is not None:
        value["valueQuantity"] = _clean({"value": row.value_quantity, "unit": row.value_unit})
    if row.value_code is not None:
        value["valueCodeableConcept"] = _clean(
            concept(None, row.value_code, None) | {"text": row.value_string})
    elif row.value_string is not None:
        value["valueString"] = row.value_string
    bounds = {
        name: _clean({"value": bound, "unit": row.value_unit})
        for name, bound in (("low", row.reference_low), ("high", row.reference_high))
        if bound is not None
    }
    reference_range = _clean({**bounds, "text": row.reference_text})
    interpretation = None
    if row.interpretation_code or row.interpretation_display:
        interpretation = _clean(
            concept(_KNOWN_CODES["interpretation"][0]
                    if row.interpretation_code in _KNOWN_CODES["interpretation"][1] else None,
                    row.interpretation_code, row.interpretation_display)
            | ({"text": row.interpretation_display} if not row.interpretation_code else {}))
    return _resource(
        "Observation", fhir_id,
        status=row.status,
        category=[c] if (c := _known("observation-category", row.category)) else [],
        code=concept(row.code_system, row.code, row.display),
        subject=refs.to("Patient", row.patient_id),
        encounter=refs.to("Encounter", row.encounter_id),
        effectiveDateTime=instant(row.effective_at),
        issued=instant(row.issued_at),
        **value,
        interpretation=[interpretation] if interpretation else [],
        referenceRange=[reference_range] if reference_range else [],
        component=[_component(part) for part in row.components],
    )


def diagnostic_report(
    row: models.DiagnosticReport, fhir_id: str, refs: Refs, results: list[int],
) -> Json:
    """``results``: the row ids of the observations whose ``report_id`` is this report."""
    performer = refs.to("Practitioner", row.performer_id)
    return _resource(
        "DiagnosticReport", fhir_id,
        status=row.status,
        category=[concept(None, row.category, None)] if row.category else [],
        code=concept(row.code_system, row.code, row.display),
        subject=refs.to("Patient", row.patient_id),
        encounter=refs.to("Encounter", row.encounter_id),
        effectiveDateTime=instant(row.effective_at),
        issued=instant(row.issued_at),
        performer=[performer] if performer else [],
        result=[ref for obs in results if (ref := refs.to("Observation", obs))],
        conclusion=row.conclusion,
    )


def medication(row: models.Medication, fhir_id: str, refs: Refs) -> Json:
    """A MedicationRequest or MedicationStatement, as ``row.source`` says."""
    common = {
        "status": row.status,
        "medicationCodeableConcept": concept(row.code_system, row.code, row.display),
        "subject": refs.to("Patient", row.patient_id),
        "reasonCode": _texts(row.reason),
    }
    encounter_ref = refs.to("Encounter", row.encounter_id)
    dosage = [{"text": row.dosage}] if row.dosage else []
    if row.source == "MedicationStatement":
        effective: Json = (
            {"effectivePeriod": _period(row.start, row.end)} if row.end is not None
            else {"effectiveDateTime": instant(row.start)}
        )
        return _resource(
            "MedicationStatement", fhir_id, **common, context=encounter_ref, **effective,
            dateAsserted=instant(row.authored_at), dosage=dosage,
        )
    refills = row.refills_allowed
    return _resource(
        "MedicationRequest", fhir_id, **common,
        intent=row.intent,
        encounter=encounter_ref,
        authoredOn=instant(row.authored_at),
        requester=refs.to("Practitioner", row.prescriber_id),
        dosageInstruction=dosage,
        dispenseRequest={"numberOfRepeatsAllowed": refills} if refills is not None else None,
    )


def _activity(item: dict[str, Any]) -> Json:
    code, display = item.get("code"), item.get("display")
    detail = _clean({
        "code": concept(None, code, display) if code else None,
        "status": item.get("status"),
        "description": display if not code else None,
    })
    return {"detail": detail}


def care_plan(row: models.CarePlan, fhir_id: str, refs: Refs, conditions: dict[str, int]) -> Json:
    """``conditions``: the patient's condition row ids by display, so the names
    the plan addresses point at those conditions where they match."""
    addresses = []
    for name in dict.fromkeys((row.addresses or "").split("; ")):
        if name:
            ref = refs.to("Condition", conditions.get(name)) or {}
            addresses.append(ref | {"display": name})
    return _resource(
        "CarePlan", fhir_id,
        status=row.status,
        intent=row.intent,
        category=_texts(row.category),
        title=row.title,
        description=row.description,
        subject=refs.to("Patient", row.patient_id),
        encounter=refs.to("Encounter", row.encounter_id),
        period=_period(row.start, row.end),
        addresses=addresses,
        activity=[_activity(item) for item in row.activities],
    )


def immunization(row: models.Immunization, fhir_id: str, refs: Refs) -> Json:
    return _resource(
        "Immunization", fhir_id,
        status=row.status,
        vaccineCode=concept(row.code_system, row.code, row.display),
        patient=refs.to("Patient", row.patient_id),
        encounter=refs.to("Encounter", row.encounter_id),
        occurrenceDateTime=instant(row.occurred_at),
        lotNumber=row.lot_number,
    )


def allergy(row: models.AllergyIntolerance, fhir_id: str, refs: Refs) -> Json:
    reactions = [
        _clean({"manifestation": _texts(item.get("manifestation")), "severity": item.get("severity")})
        for item in row.reactions
    ]
    return _resource(
        "AllergyIntolerance", fhir_id,
        clinicalStatus=_status("allergyintolerance-clinical", row.clinical_status),
        verificationStatus=_status("allergyintolerance-verification", row.verification_status),
        type=row.type,
        category=[row.category] if row.category else [],
        criticality=row.criticality,
        code=concept(row.code_system, row.code, row.display),
        patient=refs.to("Patient", row.patient_id),
        onsetDateTime=instant(row.onset_at),
        recordedDate=instant(row.recorded_at),
        reaction=reactions,
    )


def schedule(row: models.Schedule, fhir_id: str, refs: Refs) -> Json:
    actor = refs.to("Practitioner", row.practitioner_id)
    return _resource(
        "Schedule", fhir_id,
        extension=[{"url": TIMEZONE_URL, "valueCode": row.time_zone}] if row.time_zone else [],
        active=row.active,
        serviceType=_texts(row.service),
        actor=[actor] if actor else [],
        comment=row.comment,
    )


def slot(row: models.Slot, fhir_id: str, refs: Refs) -> Json:
    return _resource(
        "Slot", fhir_id,
        schedule=refs.to("Schedule", row.schedule_id),
        status=row.status,
        start=instant(row.start),
        end=instant(row.end),
        comment=row.comment,
    )


def appointment(row: models.Appointment, fhir_id: str, refs: Refs) -> Json:
    actors = [refs.to("Patient", row.patient_id), refs.to("Practitioner", row.practitioner_id)]
    slot_ref = refs.to("Slot", row.slot_id)
    return _resource(
        "Appointment", fhir_id,
        extension=[{"url": VISIT_KIND_URL, "valueCode": row.kind}],
        status=row.status,
        reasonCode=_texts(row.reason),
        start=instant(row.start),
        end=instant(row.end),
        created=instant(row.created_at),
        slot=[slot_ref] if slot_ref else [],
        participant=[{"actor": actor, "status": "accepted"} for actor in actors if actor],
    )

