"""The project's own demo clinic as a FHIR R4 transaction Bundle.

``build_demo_bundle(today)`` returns one organization, three practitioners with
schedules, five fictional patients with histories (conditions, labs with
reference ranges and interpretations, vitals, medications, a care plan,
immunizations, allergies, past visits) and appointments, plus open slots on
weekdays for the next 14 days in clinic hours (``CLINIC_TIMEZONE``). The result
depends only on ``today``: ids are name-based UUIDs, and a slot's id depends on
its practitioner and start, so importing tomorrow's bundle updates the slots
they share instead of clashing with them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rtc_server.demo.people import (
    CLINIC_NAME,
    CLINIC_PHONE,
    CLINIC_TIMEZONE,
    DEMO_PATIENTS,
    MRN_SYSTEM,
    PRACTITIONERS,
    DemoPatient,
    DemoPractitioner,
    demo_id,
)

__all__ = ["CLINIC_TIMEZONE", "DEMO_PATIENTS", "build_demo_bundle"]

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
NPI = "http://hl7.org/fhir/sid/us-npi"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"
VISIT_KIND_URL = "https://rtc-server.example.org/fhir/StructureDefinition/visit-kind"
TIMEZONE_URL = "http://hl7.org/fhir/StructureDefinition/timezone"

SLOT_MINUTES = 30
CLINIC_HOURS = [(9, 0), (9, 30), (10, 0), (10, 30), (11, 0), (11, 30),  # lunch 12-13
                (13, 0), (13, 30), (14, 0), (14, 30), (15, 0), (15, 30), (16, 0), (16, 30)]
DAYS_AHEAD = 14
PAST_VISITS = (380, 24)  # days ago: the annual visit a year back, and a recent one

_ZONE = ZoneInfo(CLINIC_TIMEZONE)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=_ZONE)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _weekday_on_or_before(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _coded(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _ref(resource_type: str, fhir_id: str, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"urn:uuid:{fhir_id}"}
    if display:
        ref["display"] = display
    return ref


class _Bundle:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, resource_type: str, fhir_id: str, body: dict[str, Any]) -> str:
        resource = {"resourceType": resource_type, "id": fhir_id, **body}
        self.entries.append({
            "fullUrl": f"urn:uuid:{fhir_id}",
            "resource": resource,
            "request": {"method": "PUT", "url": f"{resource_type}/{fhir_id}"},
        })
        return fhir_id


def build_demo_bundle(today: date) -> dict[str, Any]:
    """The demo clinic as of ``today`` (a transaction Bundle, plain JSON data)."""
    bundle = _Bundle()
    org_id = demo_id("Organization", "clinic")
    bundle.add("Organization", org_id, {
        "identifier": [{"system": NPI, "value": "1902809254"}],
        "active": True,
        "type": [_coded("http://terminology.hl7.org/CodeSystem/organization-type", "prov",
                        "Healthcare Provider")],
        "name": CLINIC_NAME,
        "telecom": [{"system": "phone", "value": CLINIC_PHONE}],
        "address": [{"line": ["100 River Street"], "city": "Cambridge", "state": "MA",
                     "postalCode": "02139", "country": "US"}],
    })
    for doc in PRACTITIONERS:
        _add_practitioner(bundle, doc)
    slot_ids = _add_slots(bundle, today)
    for number, patient in enumerate(DEMO_PATIENTS):
        _add_patient(bundle, patient, number, today, org_id, slot_ids)
    return {
        "resourceType": "Bundle",
        "id": demo_id("Bundle", today.isoformat()),
        "type": "transaction",
        "entry": bundle.entries,
    }


def _add_practitioner(bundle: _Bundle, doc: DemoPractitioner) -> None:
    name: dict[str, Any] = {"family": doc.family, "given": [doc.given], "suffix": [doc.suffix]}
    if doc.prefix:
        name["prefix"] = [doc.prefix]
    bundle.add("Practitioner", doc.fhir_id, {
        "identifier": [{"system": NPI, "value": doc.npi}],
        "active": True,
        "name": [name],
        "telecom": [{"system": "email", "value": doc.email, "use": "work"},
                    {"system": "phone", "value": "617-555-0100", "use": "work"}],
        "gender": doc.gender if doc.gender in ("male", "female") else "other",
        "qualification": [{"code": {"text": doc.specialty}}],
    })
    bundle.add("Schedule", demo_id("Schedule", doc.key), {
        "extension": [{"url": TIMEZONE_URL, "valueCode": CLINIC_TIMEZONE}],
        "active": True,
        "serviceType": [{"text": doc.specialty}],
        "actor": [_ref("Practitioner", doc.fhir_id, f"{doc.given} {doc.family}")],
        "comment": "Weekdays 9:00-12:00 and 13:00-17:00, 30-minute visits",
    })


def _weekdays_ahead(today: date) -> list[date]:
    days = (today + timedelta(days=n) for n in range(1, DAYS_AHEAD + 1))
    return [d for d in days if d.weekday() < 5]


def _booked(today: date) -> dict[tuple[str, datetime], tuple[DemoPatient, int]]:
    """(practitioner key, start) of every future demo appointment."""
    weekdays = _weekdays_ahead(today)
    booked = {}
    for patient in DEMO_PATIENTS:
        for n, visit in enumerate(patient.future):
            start = _at(weekdays[visit.weekday_index], visit.hour, visit.minute)
            booked[(visit.practitioner, start)] = (patient, n)
    return booked


def _add_slots(bundle: _Bundle, today: date) -> dict[tuple[str, datetime], str]:
    booked = _booked(today)
    slot_ids: dict[tuple[str, datetime], str] = {}
    for doc in PRACTITIONERS:
        for day in _weekdays_ahead(today):
            for hour, minute in CLINIC_HOURS:
                start = _at(day, hour, minute)
                key = (doc.key, start)
                slot_id = demo_id("Slot", doc.key, start.astimezone(UTC).isoformat())
                bundle.add("Slot", slot_id, {
                    "schedule": _ref("Schedule", demo_id("Schedule", doc.key)),
                    "status": "busy" if key in booked else "free",
                    "start": _iso(start),
                    "end": _iso(start + timedelta(minutes=SLOT_MINUTES)),
                })
                slot_ids[key] = slot_id
    return slot_ids


def _add_patient(
    bundle: _Bundle, p: DemoPatient, number: int, today: date, org_id: str,
    slot_ids: dict[tuple[str, datetime], str],
) -> None:
    doc = next(d for d in PRACTITIONERS if d.key == p.practitioner)
    address: dict[str, Any] = {"use": "home", "line": [p.address_line], "city": p.city,
                               "state": "MA", "country": "US"}
    if p.zip:
        address["postalCode"] = p.zip
    telecom = [{"system": "phone", "value": p.phone, "use": "home"}]
    if p.email:
        telecom.append({"system": "email", "value": p.email, "use": "home"})
    bundle.add("Patient", p.fhir_id, {
        "identifier": [{
            "type": _coded("http://terminology.hl7.org/CodeSystem/v2-0203", "MR",
                           "Medical Record Number"),
            "system": MRN_SYSTEM, "value": p.mrn,
        }],
        "name": [{"use": "official", "family": p.family, "given": [p.given]}],
        "telecom": telecom,
        "gender": p.gender,
        "birthDate": p.birth_date.isoformat(),
        "address": [address],
        "generalPractitioner": [_ref("Practitioner", doc.fhir_id)],
        "managingOrganization": _ref("Organization", org_id),
    })
    subject = _ref("Patient", p.fhir_id, f"{p.given} {p.family}")
    condition_ids = _add_conditions(bundle, p, today, subject)
    visits = []
    for n, days_ago in enumerate(PAST_VISITS):
        # patients take turns through the morning, so no practitioner is double-booked
        day = _weekday_on_or_before(today - timedelta(days=days_ago))
        start = _at(day, 9 + number // 2, 30 * (number % 2))
        enc_id = _add_past_visit(bundle, p, doc, org_id, n, start, subject)
        visits.append((enc_id, start))
        _add_vitals(bundle, p, n, enc_id, start, subject)
        _add_labs(bundle, p, n, enc_id, start, subject)
    last_enc, last_start = visits[-1]
    _add_meds(bundle, p, doc, last_enc, last_start, subject, condition_ids)
    _add_plan(bundle, p, last_enc, last_start, subject, condition_ids)
    for cvx, name, days_ago in p.vaccines:
        bundle.add("Immunization", demo_id("Immunization", p.key, cvx), {
            "status": "completed",
            "vaccineCode": _coded(CVX, cvx, name),
            "patient": subject,
            "occurrenceDateTime": _iso(_at(today - timedelta(days=days_ago), 10)),
            "primarySource": True,
        })
    for code, name, category, criticality, reaction in p.allergies:
        bundle.add("AllergyIntolerance", demo_id("AllergyIntolerance", p.key, code), {
            "clinicalStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "active", "Active"),
            "verificationStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "confirmed", "Confirmed"),
            "type": "allergy",
            "category": [category],
            "criticality": criticality,
            "code": _coded(SNOMED, code, name),
            "patient": subject,
            "recordedDate": _iso(visits[0][1]),
            "reaction": [{"manifestation": [{"text": reaction}], "severity": "moderate"}],
        })
    _add_future_visits(bundle, p, today, subject, slot_ids)


def _add_conditions(
    bundle: _Bundle, p: DemoPatient, today: date, subject: dict[str, Any],
) -> list[str]:
    ids = []
    for code, name, years_ago, status in p.conditions:
        onset = _at(today.replace(day=1) - timedelta(days=365 * years_ago), 9)
        ids.append(bundle.add("Condition", demo_id("Condition", p.key, code), {
            "clinicalStatus": _coded("http://terminology.hl7.org/CodeSystem/condition-clinical",
                                     status, status.capitalize()),
            "verificationStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "confirmed", "Confirmed"),
            "category": [_coded("http://terminology.hl7.org/CodeSystem/condition-category",
                                "problem-list-item", "Problem List Item")],
            "code": _coded(SNOMED, code, name),
            "subject": subject,
            "onsetDateTime": _iso(onset),
            "recordedDate": _iso(onset),
        }))
    return ids


def _add_past_visit(
    bundle: _Bundle, p: DemoPatient, doc: DemoPractitioner, org_id: str, n: int,
    start: datetime, subject: dict[str, Any],
) -> str:
    end = start + timedelta(minutes=SLOT_MINUTES)
    annual = n == 0
    kind = _coded(SNOMED, "185349003", "Encounter for check up") if annual else _coded(
        SNOMED, "390906007", "Follow-up encounter")
    enc_id = bundle.add("Encounter", demo_id("Encounter", p.key, n, start.isoformat()), {
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "type": [kind],
        "subject": subject,
        "participant": [{"individual": _ref("Practitioner", doc.fhir_id)}],
        "period": {"start": _iso(start), "end": _iso(end)},
        "reasonCode": [{"text": "Annual check-up" if annual else p.conditions[0][1]}],
        "serviceProvider": _ref("Organization", org_id),
    })
    bundle.add("Appointment", demo_id("Appointment", p.key, "past", start.isoformat()), {
        "status": "fulfilled",
        "serviceType": [{"text": "Office visit"}],
        "reasonCode": [{"text": "Annual check-up" if annual else "Follow-up visit"}],
        "start": _iso(start),
        "end": _iso(end),
        "participant": [
            {"actor": subject, "status": "accepted"},
            {"actor": _ref("Practitioner", doc.fhir_id), "status": "accepted"},
        ],
    })
    return enc_id


def _obs(
    bundle: _Bundle, p: DemoPatient, key: str, enc_id: str, start: datetime,
    subject: dict[str, Any], category: str, code: str, display: str, body: dict[str, Any],
) -> str:
    return bundle.add("Observation", demo_id("Observation", p.key, key, start.isoformat()), {
        "status": "final",
        "category": [_coded(OBS_CATEGORY, category, category.replace("-", " ").title())],
        "code": _coded(LOINC, code, display),
        "subject": subject,
        "encounter": _ref("Encounter", enc_id),
        "effectiveDateTime": _iso(start),
        "issued": _iso(start + timedelta(hours=4)),
        **body,
    })


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _add_vitals(
    bundle: _Bundle, p: DemoPatient, n: int, enc_id: str, start: datetime,
    subject: dict[str, Any],
) -> None:
    height, weight, systolic, diastolic, pulse = p.vitals
    weight = round(weight + (1.5 if n == 0 else 0.0), 1)
    systolic += 6 if n == 0 else 0
    vitals = [
        ("8302-2", "Body height", _quantity(height, "cm")),
        ("29463-7", "Body weight", _quantity(weight, "kg")),
        ("39156-5", "Body mass index (BMI) [Ratio]",
         _quantity(round(weight / (height / 100) ** 2, 1), "kg/m2")),
        ("8867-4", "Heart rate", _quantity(pulse, "/min")),
    ]
    for code, display, quantity in vitals:
        _obs(bundle, p, code, enc_id, start, subject, "vital-signs", code, display,
             {"valueQuantity": quantity})
    _obs(bundle, p, "85354-9", enc_id, start, subject, "vital-signs", "85354-9",
         "Blood pressure panel with all children optional", {"component": [
             {"code": _coded(LOINC, "8480-6", "Systolic blood pressure"),
              "valueQuantity": _quantity(systolic, "mm[Hg]")},
             {"code": _coded(LOINC, "8462-4", "Diastolic blood pressure"),
              "valueQuantity": _quantity(diastolic, "mm[Hg]")},
         ]})


def _interpretation(value: float, low: float | None, high: float | None) -> dict[str, Any]:
    if high is not None and value > high:
        return _coded(INTERPRETATION, "H", "High")
    if low is not None and value < low:
        return _coded(INTERPRETATION, "L", "Low")
    return _coded(INTERPRETATION, "N", "Normal")


def _range_text(low: float | None, high: float | None, unit: str) -> str:
    if low is not None and high is not None:
        return f"{low:g}-{high:g} {unit}"
    return f"<{high:g} {unit}" if high is not None else f">{low:g} {unit}"


def _add_labs(
    bundle: _Bundle, p: DemoPatient, n: int, enc_id: str, start: datetime,
    subject: dict[str, Any],
) -> None:
    results = []
    for lab in p.labs:
        value = lab.values[n]
        reference: dict[str, Any] = {"text": _range_text(lab.low, lab.high, lab.unit)}
        if lab.low is not None:
            reference["low"] = _quantity(lab.low, lab.unit)
        if lab.high is not None:
            reference["high"] = _quantity(lab.high, lab.unit)
        obs_id = _obs(bundle, p, lab.loinc, enc_id, start, subject, "laboratory", lab.loinc,
                      lab.display, {
                          "valueQuantity": _quantity(value, lab.unit),
                          "interpretation": [_interpretation(value, lab.low, lab.high)],
                          "referenceRange": [reference],
                      })
        results.append(_ref("Observation", obs_id, lab.display))
    bundle.add("DiagnosticReport", demo_id("DiagnosticReport", p.key, start.isoformat()), {
        "status": "final",
        "category": [_coded("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB",
                            "Laboratory")],
        "code": {"text": "Laboratory results"},
        "subject": subject,
        "encounter": _ref("Encounter", enc_id),
        "effectiveDateTime": _iso(start),
        "issued": _iso(start + timedelta(hours=4)),
        "result": results,
    })


def _add_meds(
    bundle: _Bundle, p: DemoPatient, doc: DemoPractitioner, enc_id: str, start: datetime,
    subject: dict[str, Any], condition_ids: list[str],
) -> None:
    for i, med in enumerate(p.meds):
        reason = [_ref("Condition", condition_ids[min(i, len(condition_ids) - 1)])]
        body: dict[str, Any] = {
            "status": med.status,
            "medicationCodeableConcept": _coded(RXNORM, med.rxnorm, med.display),
            "subject": subject,
            "reasonReference": reason,
        }
        if med.source == "MedicationRequest":
            body |= {
                "intent": "order",
                "encounter": _ref("Encounter", enc_id),
                "authoredOn": _iso(start),
                "requester": _ref("Practitioner", doc.fhir_id),
                "dosageInstruction": [{"text": med.dosage}],
                "dispenseRequest": {"numberOfRepeatsAllowed": med.refills},
            }
        else:
            body |= {
                "context": _ref("Encounter", enc_id),
                "effectiveDateTime": _iso(start),
                "dateAsserted": _iso(start),
                "dosage": [{"text": med.dosage}],
            }
        bundle.add(med.source, demo_id(med.source, p.key, med.rxnorm), body)


def _add_plan(
    bundle: _Bundle, p: DemoPatient, enc_id: str, start: datetime, subject: dict[str, Any],
    condition_ids: list[str],
) -> None:
    code, title, activities = p.plan
    bundle.add("CarePlan", demo_id("CarePlan", p.key), {
        "status": "active",
        "intent": "plan",
        "title": title,
        "category": [_coded(SNOMED, code, title)],
        "subject": subject,
        "encounter": _ref("Encounter", enc_id),
        "period": {"start": _iso(start)},
        "addresses": [_ref("Condition", condition_ids[0])],
        "activity": [
            {"detail": {"code": _coded(SNOMED, a_code, a_name), "status": "in-progress"}}
            for a_code, a_name in activities
        ],
    })


def _add_future_visits(
    bundle: _Bundle, p: DemoPatient, today: date, subject: dict[str, Any],
    slot_ids: dict[tuple[str, datetime], str],
) -> None:
    weekdays = _weekdays_ahead(today)
    for visit in p.future:
        start = _at(weekdays[visit.weekday_index], visit.hour, visit.minute)
        doc = next(d for d in PRACTITIONERS if d.key == visit.practitioner)
        video = visit.kind == "video"
        bundle.add("Appointment", demo_id("Appointment", p.key, start.isoformat()), {
            "extension": [{"url": VISIT_KIND_URL, "valueCode": visit.kind}],
            "status": "booked",
            "serviceType": [_coded(ACT_CODE, "VR", "virtual") if video
                            else _coded(ACT_CODE, "AMB", "ambulatory")],
            "reasonCode": [{"text": visit.reason}],
            "start": _iso(start),
            "end": _iso(start + timedelta(minutes=SLOT_MINUTES)),
            "created": _iso(_at(today - timedelta(days=3), 12)),
            "slot": [_ref("Slot", slot_ids[(visit.practitioner, start)])],
            "participant": [
                {"actor": subject, "status": "accepted"},
                {"actor": _ref("Practitioner", doc.fhir_id, f"{doc.given} {doc.family}"),
                 "status": "accepted"},
            ],
        })
