"""From a parsed FHIR resource to the column values of its records row.

Each function takes the resource and a ``Links`` (the row ids its references
resolved to) and returns a dict of columns; the importer decides whether that
dict creates a row or updates one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rtc_server.auth.accounts import normalize_email
from rtc_server.db import as_utc
from rtc_server.fhir import resources as r
from rtc_server.fhir.types import (
    CodeableConcept,
    ContactPoint,
    HumanName,
    first_code,
    first_label,
    pick_address,
    pick_telecom,
)
from rtc_server.records.models import VisitKind
from rtc_server.records.names import normalize_name

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
Drug = tuple[str | None, str | None, str]  # (system, code, display)


class Links(Protocol):
    def typed(self, field: str) -> tuple[str, int] | None: ...


def _id(links: Links, field: str, rtype: str | None = None) -> int | None:
    found = links.typed(field)
    if found is None or (rtype is not None and found[0] != rtype):
        return None
    return found[1]


def _first_id(links: Links, fields: list[str], rtype: str) -> int | None:
    for field in fields:
        row_id = _id(links, field, rtype)
        if row_id is not None:
            return row_id
    return None


def _coded(concept: CodeableConcept | None) -> dict[str, Any]:
    system, code, display = concept.first() if concept else (None, None, "")
    return {"code_system": system, "code": code, "display": display}


def _status(concept: CodeableConcept | None) -> str | None:
    return concept.first()[1] if concept else None


def _pick_name(names: list[HumanName]) -> HumanName:
    usable = [n for n in names if n.family or n.given or n.text]
    for name in usable:
        if name.use == "official":
            return name
    return usable[0] if usable else HumanName()


def _split_name(name: HumanName) -> tuple[list[str], str]:
    given, family = list(name.given), name.family or ""
    if not given and not family and name.text:
        words = name.text.split()
        given, family = words[:1], " ".join(words[1:])
    return given, family


def _email(points: list[ContactPoint]) -> str | None:
    """The first email that is one valid address, normalised; else None. It
    becomes a To header, so a list ("a@x.org, b@y.org") or a line break must
    never get that far; a bad address loses the address, not the record."""
    for point in points:
        if point.system == "email" and point.value:
            found = normalize_email(point.value)
            if found is not None:
                return found
    return None


def _address(addresses: list[r.Address]) -> dict[str, Any]:
    address = pick_address(addresses)
    return {
        "address_line": ", ".join(address.line) or None,
        "city": address.city,
        "state": address.state,
        "zip": address.postalCode,
    }


def _identifiers(res: r.Patient | r.Practitioner | r.Organization) -> list[dict[str, Any]]:
    return [i.as_json() for i in res.identifier if i.value]


def organization(res: r.Organization, links: Links) -> dict[str, Any]:
    return {
        "placeholder": False,
        "identifiers": _identifiers(res),
        "name": res.name or "",
        "kind": first_label(res.type),
        "phone": pick_telecom(res.telecom, "phone"),
        **_address(res.address),
    }


def practitioner(res: r.Practitioner, links: Links) -> dict[str, Any]:
    name = _pick_name(res.name)
    given, family = _split_name(name)
    qualification = res.qualification[0].code if res.qualification else None
    return {
        "placeholder": False,
        "npi": next((i.value for i in res.identifier if i.system == NPI_SYSTEM), None),
        "identifiers": _identifiers(res),
        "prefix": " ".join(name.prefix) or None,
        "given_name": " ".join(given),
        "family_name": family,
        "suffix": " ".join(name.suffix) or None,
        "gender": res.gender,
        "specialty": qualification.label if qualification else None,
        "email": _email(res.telecom),
        "phone": pick_telecom(res.telecom, "phone"),
        "active": res.active is not False,
    }


def patient(res: r.Patient, links: Links) -> dict[str, Any]:
    given, family = _split_name(_pick_name(res.name))
    mrn = next(
        (i.value for i in res.identifier if i.type is not None and i.type.has_code("MR")), None
    )
    return {
        "mrn": mrn,
        "identifiers": _identifiers(res),
        "given_name": given[0] if given else "",
        "middle_name": " ".join(given[1:]) or None,
        "family_name": family,
        "given_norm": normalize_name(given[0] if given else ""),
        "family_norm": normalize_name(family),
        "birth_date": res.birthDate,
        "gender": res.gender,
        "email": _email(res.telecom),
        "phone": pick_telecom(res.telecom, "phone"),
        "deceased_at": res.deceasedDateTime,
        "primary_practitioner_id": _first_id(
            links, [f"generalPractitioner[{i}]" for i in range(len(res.generalPractitioner))],
            "Practitioner",
        ),
        **_address(res.address),
    }


def encounter(res: r.Encounter, links: Links) -> dict[str, Any]:
    kind = res.type[0].first() if res.type else (None, None, "")
    return {
        "patient_id": _id(links, "subject"),
        "practitioner_id": _first_id(
            links, [f"participant[{i}].individual" for i in range(len(res.participant))],
            "Practitioner",
        ),
        "organization_id": _id(links, "serviceProvider"),
        "status": res.status,
        "class_code": res.class_.code if res.class_ else None,
        "type_code": kind[1],
        "type_display": kind[2] or None,
        "reason": first_label(res.reasonCode),
        "start": res.period.start if res.period else None,
        "end": res.period.end if res.period else None,
    }


def condition(res: r.Condition, links: Links) -> dict[str, Any]:
    return {
        "patient_id": _id(links, "subject"),
        "encounter_id": _id(links, "encounter"),
        **_coded(res.code),
        "category": first_code(res.category),
        "clinical_status": _status(res.clinicalStatus),
        "verification_status": _status(res.verificationStatus),
        "onset_at": res.onsetDateTime,
        "abatement_at": res.abatementDateTime,
        "recorded_at": res.recordedDate,
    }


def _value(
    quantity: r.Quantity | None, concept: CodeableConcept | None, text: str | None,
) -> dict[str, Any]:
    if quantity is not None and quantity.value is not None:
        return {"value": quantity.value, "unit": quantity.unit_label}
    if concept is not None:  # "code" is the component's own code: the value's is "value_code"
        return {"value": concept.label, "value_code": concept.first()[1]}
    return {"value": text}


def observation(res: r.Observation, links: Links) -> dict[str, Any]:
    value_string = res.valueString
    value_quantity = res.valueQuantity.value if res.valueQuantity else None
    if value_quantity is None and res.valueInteger is not None:
        value_quantity = float(res.valueInteger)
    if res.valueBoolean is not None:
        value_string = "yes" if res.valueBoolean else "no"
    if res.valueCodeableConcept is not None:
        value_string = res.valueCodeableConcept.label
    ranges = res.referenceRange[0] if res.referenceRange else None
    interpretation = res.interpretation[0] if res.interpretation else None
    effective = res.effectiveDateTime or (res.effectivePeriod.start if res.effectivePeriod else None)
    components = []
    for part in res.component:
        _sys, code, display = part.code.first()
        value = _value(part.valueQuantity, part.valueCodeableConcept, part.valueString)
        components.append({"code": code, "display": display, **value})
    return {
        "patient_id": _id(links, "subject"),
        "encounter_id": _id(links, "encounter"),
        "status": res.status,
        "category": first_code(res.category),
        **_coded(res.code),
        "value_quantity": value_quantity,
        "value_unit": res.valueQuantity.unit_label if res.valueQuantity else None,
        "value_string": value_string,
        "value_code": res.valueCodeableConcept.first()[1] if res.valueCodeableConcept else None,
        "reference_low": ranges.low.value if ranges and ranges.low else None,
        "reference_high": ranges.high.value if ranges and ranges.high else None,
        "reference_text": ranges.text if ranges else None,
        "interpretation_code": interpretation.first()[1] if interpretation else None,
        "interpretation_display": interpretation.label or None if interpretation else None,
        "components": components,
        "effective_at": effective,
        "issued_at": res.issued,
    }


def diagnostic_report(res: r.DiagnosticReport, links: Links) -> dict[str, Any]:
    effective = res.effectiveDateTime or (res.effectivePeriod.start if res.effectivePeriod else None)
    return {
        "patient_id": _id(links, "subject"),
        "encounter_id": _id(links, "encounter"),
        "performer_id": _first_id(
            links, [f"performer[{i}]" for i in range(len(res.performer))], "Practitioner"
        ),
        "status": res.status,
        "category": first_code(res.category),
        **_coded(res.code),
        "conclusion": res.conclusion,
        "effective_at": effective,
        "issued_at": res.issued,
    }


@dataclass(frozen=True, slots=True)
class MedicationContext:
    drug: Drug
    reason: str | None


def medication(
    res: r.MedicationRequest | r.MedicationStatement, links: Links, ctx: MedicationContext,
) -> dict[str, Any]:
    system, code, display = ctx.drug
    values: dict[str, Any] = {
        "patient_id": _id(links, "subject"),
        "encounter_id": _id(links, "encounter"),
        "source": res.resourceType,
        "status": res.status,
        "code_system": system,
        "code": code,
        "display": display,
        "reason": ctx.reason,
    }
    if isinstance(res, r.MedicationRequest):
        dispense = res.dispenseRequest
        values |= {
            "prescriber_id": _id(links, "requester", "Practitioner"),
            "intent": res.intent,
            "dosage": next((d.text for d in res.dosageInstruction if d.text), None),
            "refills_allowed": dispense.numberOfRepeatsAllowed if dispense else None,
            "authored_at": res.authoredOn,
            "start": res.authoredOn,
            "end": None,
        }
    else:
        period = res.effectivePeriod
        start = res.effectiveDateTime or (period.start if period else None)
        values |= {
            "encounter_id": values["encounter_id"] or _id(links, "context"),
            "prescriber_id": None,
            "intent": None,
            "dosage": next((d.text for d in res.dosage if d.text), None),
            "refills_allowed": None,
            "authored_at": res.dateAsserted or start,
            "start": start,
            "end": period.end if period else None,
        }
    return values


def care_plan(res: r.CarePlan, links: Links, addresses: str | None) -> dict[str, Any]:
    activities = []
    for activity in res.activity:
        detail = activity.detail
        if detail is None:
            continue
        _sys, code, display = detail.code.first() if detail.code else (None, None, "")
        activities.append({
            "code": code,
            "display": display or detail.description or "",
            "status": detail.status,
        })
    return {
        "patient_id": _id(links, "subject"),
        "encounter_id": _id(links, "encounter"),
        "title": res.title or first_label(res.category) or "Care plan",
        "category": first_label(res.category),
        "status": res.status,
        "intent": res.intent,
        "description": res.description,
        "addresses": addresses,
        "activities": activities,
        "start": res.period.start if res.period else None,
        "end": res.period.end if res.period else None,
    }


def immunization(res: r.Immunization, links: Links) -> dict[str, Any]:
    return {
        "patient_id": _id(links, "patient"),
        "encounter_id": _id(links, "encounter"),
        "status": res.status,
        **_coded(res.vaccineCode),
        "lot_number": res.lotNumber,
        "occurred_at": res.occurrenceDateTime,
    }


def allergy(res: r.AllergyIntolerance, links: Links) -> dict[str, Any]:
    reactions = [
        {
            "manifestation": ", ".join(m.label for m in reaction.manifestation),
            "severity": reaction.severity,
        }
        for reaction in res.reaction
    ]
    return {
        "patient_id": _id(links, "patient"),
        **_coded(res.code),
        "clinical_status": _status(res.clinicalStatus),
        "verification_status": _status(res.verificationStatus),
        "type": res.type,
        "category": res.category[0] if res.category else None,
        "criticality": res.criticality,
        "reactions": reactions,
        "onset_at": res.onsetDateTime,
        "recorded_at": res.recordedDate,
    }


def schedule(res: r.Schedule, links: Links) -> dict[str, Any]:
    return {
        "practitioner_id": schedule_practitioner(res, links),
        "active": res.active is not False,
        "service": first_label(res.serviceType),
        "time_zone": res.time_zone,
        "comment": res.comment,
    }


def schedule_practitioner(res: r.Schedule, links: Links) -> int | None:
    return _first_id(links, [f"actor[{i}]" for i in range(len(res.actor))], "Practitioner")


def slot(res: r.Slot, links: Links, practitioner_id: int | None) -> dict[str, Any]:
    return {
        "practitioner_id": practitioner_id,
        "schedule_id": _id(links, "schedule"),
        "start": res.start,
        "end": res.end,
        "status": res.status,
        "comment": res.comment,
    }


_VIDEO_WORDS = ("video", "virtual", "telehealth", "telemedicine")


def visit_kind(res: r.Appointment) -> str:
    """"video" when marked by our visit-kind extension, a v3 ActCode VR coding,
    or words such as "video"/"telehealth" in the service or appointment type."""
    for ext in res.extension:
        if ext.url.endswith("/visit-kind") and ext.valueCode in set(VisitKind):
            return ext.valueCode
    concepts = [*res.serviceType, *([res.appointmentType] if res.appointmentType else [])]
    for concept in concepts:
        words = " ".join([concept.text or "", *(c.display or "" for c in concept.coding)]).lower()
        if concept.has_code("VR") or any(w in words for w in _VIDEO_WORDS):
            return VisitKind.video.value
    return VisitKind.in_person.value


def appointment(res: r.Appointment, links: Links) -> dict[str, Any]:
    actors = [f"participant[{i}].actor" for i in range(len(res.participant))]
    return {
        "patient_id": _first_id(links, actors, "Patient"),
        "practitioner_id": _first_id(links, actors, "Practitioner"),
        "slot_id": _first_id(links, [f"slot[{i}]" for i in range(len(res.slot))], "Slot"),
        "start": res.start,
        "end": res.end,
        "status": res.status,
        "reason": first_label(res.reasonCode) or res.description,
        "kind": visit_kind(res),
        "created_at": res.created,
    }


SIMPLE: dict[str, Callable[[Any, Links], dict[str, Any]]] = {
    "Organization": organization,
    "Practitioner": practitioner,
    "Patient": patient,
    "Encounter": encounter,
    "Condition": condition,
    "Observation": observation,
    "DiagnosticReport": diagnostic_report,
    "Immunization": immunization,
    "AllergyIntolerance": allergy,
    "Schedule": schedule,
    "Appointment": appointment,
}


def placeholder_values(rtype: str, system: str, value: str) -> dict[str, Any]:
    """Columns of a placeholder row known only by one identifier."""
    values: dict[str, Any] = {
        "placeholder": True,
        "identifiers": [{"system": system or None, "value": value, "type": None}],
    }
    if rtype == "Practitioner" and system == NPI_SYSTEM:
        values["npi"] = value
    return values


def unchanged(old: Any, new: Any) -> bool:
    """SQLite returns naive UTC datetimes; compare them as aware UTC."""
    if isinstance(old, datetime) and isinstance(new, datetime) and old.tzinfo is None:
        return as_utc(old) == new
    return bool(old == new)
