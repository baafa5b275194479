"""Response shapes of the Medical Records tab and the console's chart view."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rtc_server.portal.labs.shapes import HeldTestOut, LabTestOut


class PatientSummary(BaseModel):
    id: int
    name: str
    birth_date: date
    gender: str | None
    mrn: str | None


class ConditionOut(BaseModel):
    id: int
    display: str
    code: str | None
    clinical_status: str | None
    onset_at: datetime | None
    resolved_at: datetime | None


class ConditionsOut(BaseModel):
    active: list[ConditionOut]
    resolved: list[ConditionOut]


class MedicationOut(BaseModel):
    id: int
    display: str
    dosage: str | None
    status: str | None
    reason: str | None
    prescriber: str | None
    authored_at: datetime | None
    refills_allowed: int | None


class MedicationsOut(BaseModel):
    active: list[MedicationOut]
    past: list[MedicationOut]


class AllergyOut(BaseModel):
    id: int
    display: str
    category: str | None
    criticality: str | None
    clinical_status: str | None
    reactions: list[str]
    recorded_at: datetime | None


class ImmunizationOut(BaseModel):
    id: int
    display: str
    occurred_at: datetime | None
    status: str | None


class ActivityOut(BaseModel):
    display: str
    status: str | None


class CarePlanOut(BaseModel):
    id: int
    title: str
    status: str | None
    description: str | None
    addresses: str | None
    start: datetime | None
    end: datetime | None
    activities: list[ActivityOut]


class VisitOut(BaseModel):
    id: int
    start: datetime | None
    end: datetime | None
    type: str | None
    reason: str | None
    practitioner: str | None
    virtual: bool


class RecordsOut(BaseModel):
    patient: PatientSummary
    conditions: ConditionsOut
    medications: MedicationsOut
    allergies: list[AllergyOut]
    immunizations: list[ImmunizationOut]
    care_plans: list[CarePlanOut]
    visits: list[VisitOut]


class ChartOut(BaseModel):
    """A clinician's view: the record, every lab result (held ones marked) and why it is open."""

    record: RecordsOut
    labs: list[LabTestOut]
    held_ids: list[int]
    held_tests: list[HeldTestOut]
    access: str


class CrossCoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Why you need this chart (covering for a colleague, on call, ...). Recorded.
    reason: str = Field(min_length=10, max_length=500)

    @field_validator("reason", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


class CrossCoverOut(BaseModel):
    patient_id: int
    expires_at: datetime
