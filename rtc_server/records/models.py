"""The clinical records on file, and the scheduling tables they share a clinic with.

Rows arrive from FHIR R4 bundles (``rtc_server.fhir``); each table keeps the
resource's ``fhir_id`` (unique per table) so that re-importing a bundle updates
rows in place. Rows written by the portal itself (a booked appointment) get a
random ``fhir_id`` so they can be exported the same way.

Timestamps are ``DateTime(timezone=True)`` columns holding aware UTC values;
SQLite hands them back naive, so read them through ``rtc_server.db.as_utc``.
Codes are kept as (system, code, display) so the portal can show the display
text and still know exactly what was coded.

No ``from __future__ import annotations`` here: SQLModel resolves column types
from the real annotations.
"""

import enum
from datetime import date, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from rtc_server.records.names import normalize_name

__all__ = [
    "AllergyIntolerance",
    "Appointment",
    "AppointmentStatus",
    "CarePlan",
    "Condition",
    "DiagnosticReport",
    "Encounter",
    "FhirIdentifier",
    "Immunization",
    "Medication",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "Schedule",
    "Slot",
    "SlotStatus",
    "VisitKind",
    "normalize_name",
]


class SlotStatus(enum.StrEnum):
    free = "free"
    busy = "busy"
    busy_unavailable = "busy-unavailable"
    busy_tentative = "busy-tentative"
    entered_in_error = "entered-in-error"


class AppointmentStatus(enum.StrEnum):
    proposed = "proposed"
    pending = "pending"
    booked = "booked"
    arrived = "arrived"
    fulfilled = "fulfilled"
    cancelled = "cancelled"
    noshow = "noshow"
    entered_in_error = "entered-in-error"
    checked_in = "checked-in"
    waitlist = "waitlist"


# An appointment in one of these states no longer holds its slot or its time.
RELEASED_APPOINTMENT_STATUSES = ("cancelled", "entered-in-error")
_HOLDS_SLOT = text("status NOT IN ('cancelled', 'entered-in-error')")


class VisitKind(enum.StrEnum):
    in_person = "in_person"
    video = "video"


def _new_fhir_id() -> str:
    return str(uuid4())


def _fhir_id() -> Any:
    return Field(default_factory=_new_fhir_id, unique=True)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index),
    )


def _fk(table: str, *, nullable: bool = True, ondelete: str = "SET NULL") -> Any:
    return Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable, index=True
        ),
    )


def _patient_fk() -> Any:
    return _fk("patient", nullable=False, ondelete="CASCADE")


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class FhirIdentifier(SQLModel, table=True):
    """Business identifiers (NPI, Synthea id...) of practitioners and organizations.

    Conditional references such as ``Practitioner?identifier=<system>|<value>``
    are resolved through this table, including against rows that an earlier
    bundle imported; unique per (resource type, system, value) so one
    identifier never names two rows.
    """

    __tablename__ = "fhir_identifier"
    __table_args__ = (UniqueConstraint("resource_type", "system", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=40)
    system: str = ""
    value: str
    row_id: int = Field(index=True)


class Organization(SQLModel, table=True):
    """A clinic, hospital or payer. ``placeholder`` rows were created from a
    conditional reference and are filled in when the organization's own bundle
    is imported."""

    __tablename__ = "organization"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    placeholder: bool = False
    identifiers: list[dict[str, Any]] = _json_list()
    name: str = ""
    kind: str | None = None  # Organization.type display, e.g. "Healthcare Provider"
    phone: str | None = None
    address_line: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None


class Practitioner(SQLModel, table=True):
    """A clinician. See ``Organization`` for what ``placeholder`` means."""

    __tablename__ = "practitioner"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    placeholder: bool = False
    npi: str | None = Field(default=None, index=True)
    identifiers: list[dict[str, Any]] = _json_list()
    prefix: str | None = None  # "Dr."
    given_name: str = ""
    family_name: str = ""
    suffix: str | None = None  # "MD", "NP"
    gender: str | None = None
    specialty: str | None = None  # first Practitioner.qualification, e.g. "Pediatrics"
    email: str | None = None
    phone: str | None = None
    active: bool = True

    @property
    def display_name(self) -> str:
        parts = [self.prefix, self.given_name, self.family_name]
        name = " ".join(p for p in parts if p)
        return f"{name}, {self.suffix}" if self.suffix else name


class Patient(SQLModel, table=True):
    """A person whose records are on file. Registration matches people to a row
    by ``given_norm``/``family_norm`` (see ``normalize_name``), birth date and
    zip or email, so those are kept apart from the display names."""

    __tablename__ = "patient"
    __table_args__ = (Index("ix_patient_match", "family_norm", "birth_date"),)

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    mrn: str | None = Field(default=None, index=True)
    identifiers: list[dict[str, Any]] = _json_list()  # [{system, value, type}]
    given_name: str
    middle_name: str | None = None
    family_name: str
    given_norm: str = Field(index=True)
    family_norm: str
    birth_date: date
    gender: str | None = None
    address_line: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    email: str | None = None
    phone: str | None = None
    deceased_at: datetime | None = _ts()
    primary_practitioner_id: int | None = _fk("practitioner")

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip()


class Encounter(SQLModel, table=True):
    """A past (or ongoing) visit."""

    __tablename__ = "encounter"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    patient_id: int = _patient_fk()
    practitioner_id: int | None = _fk("practitioner")
    organization_id: int | None = _fk("organization")
    status: str | None = None
    class_code: str | None = None  # AMB, EMER, IMP, VR (virtual)...
    type_code: str | None = None
    type_display: str | None = None
    reason: str | None = None
    start: datetime | None = _ts(index=True)
    end: datetime | None = _ts()


class Condition(SQLModel, table=True):
    """A problem or diagnosis."""

    __tablename__ = "condition"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    patient_id: int = _patient_fk()
    encounter_id: int | None = _fk("encounter")
    code_system: str | None = None
    code: str | None = None
    display: str = ""
    category: str | None = None
    clinical_status: str | None = None  # active, resolved...
    verification_status: str | None = None
    onset_at: datetime | None = _ts()
    abatement_at: datetime | None = _ts()
    recorded_at: datetime | None = _ts()


class DiagnosticReport(SQLModel, table=True):
    """A panel or report grouping observations (their ``report_id`` points here)."""

    __tablename__ = "diagnostic_report"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    patient_id: int = _patient_fk()
    encounter_id: int | None = _fk("encounter")
    performer_id: int | None = _fk("practitioner")
    status: str | None = None
    category: str | None = None  # LAB, ...
    code_system: str | None = None
    code: str | None = None
    display: str = ""
    conclusion: str | None = None
    effective_at: datetime | None = _ts(index=True)
    issued_at: datetime | None = _ts()


class Observation(SQLModel, table=True):
    """A lab result, vital sign or other measurement.

    A lab result shows its value (``value_quantity`` + ``value_unit``, or
    ``value_string`` for coded/text values), its reference range and its
    interpretation (H, L, N...). Multi-part measurements such as blood pressure
    keep their parts in ``components`` ([{code, display, value, unit}]).
    """

    __tablename__ = "observation"
    __table_args__ = (Index("ix_observation_patient_category", "patient_id", "category"),)

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    patient_id: int = _patient_fk()
    encounter_id: int | None = _fk("encounter")
    report_id: int | None = _fk("diagnostic_report")
    status: str | None = None
    category: str | None = None  # laboratory, vital-signs, survey, social-history...
    code_system: str | None = None
    code: str | None = None
    display: str = ""
    value_quantity: float | None = None
    value_unit: str | None = None
    value_string: str | None = None  # text value, or the display of a coded value
    value_code: str | None = None
    reference_low: float | None = None
    reference_high: float | None = None
    reference_text: str | None = None
    interpretation_code: str | None = None  # H, L, N, A, HH, LL...
    interpretation_display: str | None = None
    components: list[dict[str, Any]] = _json_list()
    effective_at: datetime | None = _ts(index=True)
    issued_at: datetime | None = _ts()


class Medication(SQLModel, table=True):
    """A prescription (``source`` MedicationRequest) or a medication the patient
    reports taking (``source`` MedicationStatement)."""

    __tablename__ = "medication"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    patient_id: int = _patient_fk()
    encounter_id: int | None = _fk("encounter")
    prescriber_id: int | None = _fk("practitioner")
    source: str = "MedicationRequest"
    status: str | None = None  # active, stopped, completed...
    intent: str | None = None
    code_system: str | None = None
    code: str | None = None
    display: str = ""
    dosage: str | None = None
    reason: str | None = None
    refills_allowed: int | None = None  # dispenseRequest.numberOfRepeatsAllowed
    authored_at: datetime | None = _ts()  # authoredOn, or the statement's date
    start: datetime | None = _ts()
    end: datetime | None = _ts()


class CarePlan(SQLModel, table=True):
    """A treatment plan; ``activities`` is [{code, display, status}]."""

    __tablename__ = "care_plan"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    patient_id: int = _patient_fk()
    encounter_id: int | None = _fk("encounter")
    title: str = ""
    category: str | None = None
    status: str | None = None
    intent: str | None = None
    description: str | None = None
    addresses: str | None = None  # the conditions it treats, as text
    activities: list[dict[str, Any]] = _json_list()
    start: datetime | None = _ts()
    end: datetime | None = _ts()


class Immunization(SQLModel, table=True):
    __tablename__ = "immunization"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    patient_id: int = _patient_fk()
    encounter_id: int | None = _fk("encounter")
    status: str | None = None
    code_system: str | None = None
    code: str | None = None  # CVX
    display: str = ""
    lot_number: str | None = None
    occurred_at: datetime | None = _ts(index=True)


class AllergyIntolerance(SQLModel, table=True):
    """An allergy; ``reactions`` is [{manifestation, severity}]."""

    __tablename__ = "allergy_intolerance"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    patient_id: int = _patient_fk()
    code_system: str | None = None
    code: str | None = None
    display: str = ""
    clinical_status: str | None = None
    verification_status: str | None = None
    type: str | None = None  # allergy | intolerance
    category: str | None = None  # food, medication, environment, biologic
    criticality: str | None = None  # low, high, unable-to-assess
    reactions: list[dict[str, Any]] = _json_list()
    onset_at: datetime | None = _ts()
    recorded_at: datetime | None = _ts()


class Schedule(SQLModel, table=True):
    """A practitioner's bookable calendar; ``time_zone`` names the clinic hours' zone."""

    __tablename__ = "schedule"

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    practitioner_id: int = _fk("practitioner", nullable=False, ondelete="CASCADE")
    active: bool = True
    service: str | None = None
    time_zone: str | None = None
    comment: str | None = None


class Slot(SQLModel, table=True):
    """A bookable period. A practitioner has at most one slot starting at a given
    instant, enforced by the database."""

    __tablename__ = "slot"
    __table_args__ = (UniqueConstraint("practitioner_id", "start"),)

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    practitioner_id: int = _fk("practitioner", nullable=False, ondelete="CASCADE")
    schedule_id: int | None = _fk("schedule")
    start: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    end: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    status: str = Field(default=SlotStatus.free.value, index=True)
    comment: str | None = None


class Appointment(SQLModel, table=True):
    """A booked (or past, or cancelled) visit.

    While an appointment holds its slot (any status but cancelled /
    entered-in-error) no other appointment may hold the same slot, nor the same
    practitioner at the same start: partial unique indexes, valid on SQLite and
    PostgreSQL, so double booking fails in the database, not in a read-then-write.
    """

    __tablename__ = "appointment"
    __table_args__ = (
        Index(
            "uq_appointment_slot_held", "slot_id", unique=True,
            sqlite_where=_HOLDS_SLOT, postgresql_where=_HOLDS_SLOT,
        ),
        Index(
            "uq_appointment_practitioner_start_held", "practitioner_id", "start", unique=True,
            sqlite_where=_HOLDS_SLOT, postgresql_where=_HOLDS_SLOT,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    fhir_id: str = _fhir_id()
    patient_id: int = _patient_fk()
    practitioner_id: int = _fk("practitioner", nullable=False, ondelete="CASCADE")
    slot_id: int | None = _fk("slot")
    start: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    end: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    status: str = Field(default=AppointmentStatus.booked.value, index=True)
    reason: str | None = None
    kind: str = VisitKind.in_person.value
    created_at: datetime | None = _ts()
    # Portal bookings (migration 0004): when it was cancelled, and the appointment
    # a reschedule replaced it with (the old one is cancelled in the same transaction;
    # both belong to one patient, so a plain indexed id: adding a foreign key would
    # copy this table on SQLite).
    cancelled_at: datetime | None = _ts()
    replaced_by_id: int | None = Field(default=None, index=True)
