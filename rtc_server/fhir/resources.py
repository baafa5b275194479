"""The subset of each FHIR R4 resource that the records store uses.

Each model ignores elements it does not know, so real-world bundles with
extensions and newer elements still load. ``links()`` lists the references the
importer follows: (field path, reference, resource types it may point to,
required). Only these references are checked; references the store does not use
(``CarePlan.careTeam``, claims...) are never resolved, so they cannot fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field, field_validator

from rtc_server.fhir.types import (
    Address,
    CodeableConcept,
    Coding,
    ContactPoint,
    Element,
    Extension,
    FhirDate,
    FhirDateTime,
    FhirId,
    HumanName,
    Identifier,
    Period,
    Quantity,
    Reference,
)

Link = tuple[str, Reference | None, tuple[str, ...], bool]

PATIENT = ("Patient",)
PRACTITIONER = ("Practitioner",)
ORGANIZATION = ("Organization",)
ENCOUNTER = ("Encounter",)


class Resource(Element):
    resourceType: str
    id: FhirId | None = None

    def links(self) -> Iterator[Link]:
        return iter(())


class Patient(Resource):
    identifier: list[Identifier] = Field(default_factory=list)
    name: list[HumanName]
    telecom: list[ContactPoint] = Field(default_factory=list)
    gender: str | None = None
    birthDate: FhirDate
    deceasedDateTime: FhirDateTime | None = None
    address: list[Address] = Field(default_factory=list)
    generalPractitioner: list[Reference] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _has_a_name(cls, names: list[HumanName]) -> list[HumanName]:
        if not any(n.family or n.given or (n.text and n.text.strip()) for n in names):
            raise ValueError("a patient needs a family or given name")
        return names

    def links(self) -> Iterator[Link]:
        for i, ref in enumerate(self.generalPractitioner):
            yield f"generalPractitioner[{i}]", ref, PRACTITIONER, False


class Practitioner(Resource):
    identifier: list[Identifier] = Field(default_factory=list)
    active: bool | None = None
    name: list[HumanName] = Field(default_factory=list)
    telecom: list[ContactPoint] = Field(default_factory=list)
    gender: str | None = None
    qualification: list[_Qualification] = Field(default_factory=list)


class _Qualification(Element):
    code: CodeableConcept | None = None


class Organization(Resource):
    identifier: list[Identifier] = Field(default_factory=list)
    name: str | None = None
    type: list[CodeableConcept] = Field(default_factory=list)
    telecom: list[ContactPoint] = Field(default_factory=list)
    address: list[Address] = Field(default_factory=list)


class _Participant(Element):
    individual: Reference | None = None


class Encounter(Resource):
    status: str | None = None
    class_: Coding | None = Field(default=None, alias="class")
    type: list[CodeableConcept] = Field(default_factory=list)
    subject: Reference
    participant: list[_Participant] = Field(default_factory=list)
    period: Period | None = None
    reasonCode: list[CodeableConcept] = Field(default_factory=list)
    serviceProvider: Reference | None = None

    def links(self) -> Iterator[Link]:
        yield "subject", self.subject, PATIENT, True
        for i, part in enumerate(self.participant):
            yield f"participant[{i}].individual", part.individual, PRACTITIONER, False
        yield "serviceProvider", self.serviceProvider, ORGANIZATION, False


class _PatientOwned(Resource):
    subject: Reference
    encounter: Reference | None = None

    def links(self) -> Iterator[Link]:
        yield "subject", self.subject, PATIENT, True
        yield "encounter", self.encounter, ENCOUNTER, False


class Condition(_PatientOwned):
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    category: list[CodeableConcept] = Field(default_factory=list)
    code: CodeableConcept
    onsetDateTime: FhirDateTime | None = None
    abatementDateTime: FhirDateTime | None = None
    recordedDate: FhirDateTime | None = None


class _ReferenceRange(Element):
    low: Quantity | None = None
    high: Quantity | None = None
    text: str | None = None


class _Component(Element):
    code: CodeableConcept
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: str | None = None


class Observation(_PatientOwned):
    status: str | None = None
    category: list[CodeableConcept] = Field(default_factory=list)
    code: CodeableConcept
    effectiveDateTime: FhirDateTime | None = None
    effectivePeriod: Period | None = None
    issued: FhirDateTime | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: str | None = None
    valueBoolean: bool | None = None
    valueInteger: int | None = None
    interpretation: list[CodeableConcept] = Field(default_factory=list)
    referenceRange: list[_ReferenceRange] = Field(default_factory=list)
    component: list[_Component] = Field(default_factory=list)


class DiagnosticReport(_PatientOwned):
    status: str | None = None
    category: list[CodeableConcept] = Field(default_factory=list)
    code: CodeableConcept
    effectiveDateTime: FhirDateTime | None = None
    effectivePeriod: Period | None = None
    issued: FhirDateTime | None = None
    performer: list[Reference] = Field(default_factory=list)
    result: list[Reference] = Field(default_factory=list)
    conclusion: str | None = None

    def links(self) -> Iterator[Link]:
        yield from super().links()
        for i, ref in enumerate(self.performer):
            yield f"performer[{i}]", ref, PRACTITIONER + ORGANIZATION, False
        for i, ref in enumerate(self.result):
            yield f"result[{i}]", ref, ("Observation",), False


class Medication(Resource):
    """Only read to name the drug of a request or statement that references it."""

    code: CodeableConcept | None = None


class _Dosage(Element):
    text: str | None = None


class _Dispense(Element):
    numberOfRepeatsAllowed: int | None = None


class _MedicationUse(_PatientOwned):
    status: str | None = None
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    reasonCode: list[CodeableConcept] = Field(default_factory=list)
    reasonReference: list[Reference] = Field(default_factory=list)
    contained: list[dict[str, Any]] = Field(default_factory=list)


class MedicationRequest(_MedicationUse):
    intent: str | None = None
    authoredOn: FhirDateTime | None = None
    requester: Reference | None = None
    dosageInstruction: list[_Dosage] = Field(default_factory=list)
    dispenseRequest: _Dispense | None = None

    def links(self) -> Iterator[Link]:
        yield from super().links()
        yield "requester", self.requester, PRACTITIONER, False


class MedicationStatement(_MedicationUse):
    context: Reference | None = None
    effectiveDateTime: FhirDateTime | None = None
    effectivePeriod: Period | None = None
    dateAsserted: FhirDateTime | None = None
    dosage: list[_Dosage] = Field(default_factory=list)

    def links(self) -> Iterator[Link]:
        yield from super().links()
        yield "context", self.context, ENCOUNTER, False


class _ActivityDetail(Element):
    code: CodeableConcept | None = None
    status: str | None = None
    description: str | None = None


class _Activity(Element):
    detail: _ActivityDetail | None = None


class CarePlan(_PatientOwned):
    status: str | None = None
    intent: str | None = None
    title: str | None = None
    description: str | None = None
    category: list[CodeableConcept] = Field(default_factory=list)
    period: Period | None = None
    addresses: list[Reference] = Field(default_factory=list)
    activity: list[_Activity] = Field(default_factory=list)


class Immunization(Resource):
    status: str | None = None
    vaccineCode: CodeableConcept
    patient: Reference
    encounter: Reference | None = None
    occurrenceDateTime: FhirDateTime | None = None
    lotNumber: str | None = None

    def links(self) -> Iterator[Link]:
        yield "patient", self.patient, PATIENT, True
        yield "encounter", self.encounter, ENCOUNTER, False


class _Reaction(Element):
    manifestation: list[CodeableConcept] = Field(default_factory=list)
    severity: str | None = None


class AllergyIntolerance(Resource):
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    type: str | None = None
    category: list[str] = Field(default_factory=list)
    criticality: str | None = None
    code: CodeableConcept
    patient: Reference
    onsetDateTime: FhirDateTime | None = None
    recordedDate: FhirDateTime | None = None
    reaction: list[_Reaction] = Field(default_factory=list)

    def links(self) -> Iterator[Link]:
        yield "patient", self.patient, PATIENT, True


class Schedule(Resource):
    active: bool | None = None
    actor: list[Reference] = Field(min_length=1)
    serviceType: list[CodeableConcept] = Field(default_factory=list)
    comment: str | None = None
    extension: list[Extension] = Field(default_factory=list)

    def links(self) -> Iterator[Link]:
        for i, ref in enumerate(self.actor):
            yield f"actor[{i}]", ref, ("Practitioner", "PractitionerRole", "Location"), False

    @property
    def time_zone(self) -> str | None:
        for ext in self.extension:
            if ext.url.endswith("/timezone") and ext.valueCode:
                return ext.valueCode
        return None


class Slot(Resource):
    schedule: Reference
    status: str
    start: FhirDateTime
    end: FhirDateTime
    comment: str | None = None

    def links(self) -> Iterator[Link]:
        yield "schedule", self.schedule, ("Schedule",), True


class _AppointmentParticipant(Element):
    actor: Reference | None = None
    status: str | None = None


class Appointment(Resource):
    status: str
    serviceType: list[CodeableConcept] = Field(default_factory=list)
    appointmentType: CodeableConcept | None = None
    reasonCode: list[CodeableConcept] = Field(default_factory=list)
    description: str | None = None
    start: FhirDateTime
    end: FhirDateTime
    created: FhirDateTime | None = None
    slot: list[Reference] = Field(default_factory=list)
    participant: list[_AppointmentParticipant] = Field(min_length=1)
    extension: list[Extension] = Field(default_factory=list)

    def links(self) -> Iterator[Link]:
        for i, ref in enumerate(self.slot):
            yield f"slot[{i}]", ref, ("Slot",), False
        for i, part in enumerate(self.participant):
            yield f"participant[{i}].actor", part.actor, PATIENT + PRACTITIONER, False


Practitioner.model_rebuild()

# Resource types the store keeps, in the order they are written (a row's
# references point only at rows of earlier types, or of its own type).
STORED: dict[str, type[Resource]] = {
    "Organization": Organization,
    "Practitioner": Practitioner,
    "Patient": Patient,
    "Encounter": Encounter,
    "Condition": Condition,
    "Observation": Observation,
    "DiagnosticReport": DiagnosticReport,
    "MedicationRequest": MedicationRequest,
    "MedicationStatement": MedicationStatement,
    "CarePlan": CarePlan,
    "Immunization": Immunization,
    "AllergyIntolerance": AllergyIntolerance,
    "Schedule": Schedule,
    "Slot": Slot,
    "Appointment": Appointment,
}
