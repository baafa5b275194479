"""Request and response shapes of the Appointments API (no table here)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from rtc_server.portal.appointments.clinic import ClinicRulesOut
from rtc_server.records.models import VisitKind
from rtc_server.types import DbId

MAX_REASON = 500


def _clean_reason(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        if any(ord(c) < 32 and c not in "\n\t" for c in value):
            raise ValueError("Use letters, numbers and punctuation only.")
    return value


class BookIn(BaseModel):
    """Book ``start`` (an open time from ``/appointments/open-times``) with a provider."""

    model_config = ConfigDict(extra="forbid")
    practitioner_id: DbId
    start: AwareDatetime
    kind: VisitKind
    reason: str = Field(min_length=1, max_length=MAX_REASON)

    _reason = field_validator("reason", mode="before")(_clean_reason)


class RescheduleIn(BaseModel):
    """Move an appointment to ``start``; provider, kind and reason stay unless given."""

    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime
    practitioner_id: DbId | None = None
    kind: VisitKind | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=MAX_REASON)

    _reason = field_validator("reason", mode="before")(_clean_reason)


class OpenTimesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    practitioner_id: DbId
    kind: VisitKind | None = None
    #: Earliest start wanted (default: now); times before the clinic's notice are never offered.
    start: AwareDatetime | None = None
    days: int = Field(default=14, ge=1, le=31)


class PractitionerRef(BaseModel):
    id: int
    name: str


class ProviderOut(BaseModel):
    id: int
    name: str
    specialty: str | None
    #: The patient's primary provider, or one they have seen.
    care_team: bool
    primary: bool
    #: Visit kinds the provider's published hours offer (imported slots offer both).
    kinds: list[VisitKind]


class OpenTimeOut(BaseModel):
    start: datetime
    end: datetime
    kinds: list[VisitKind]


class OpenTimesOut(BaseModel):
    practitioner: PractitionerRef
    #: The clinic's zone; times are UTC instants, shown in the viewer's zone.
    clinic_time_zone: str
    start: datetime
    end: datetime
    times: list[OpenTimeOut]


class AppointmentOut(BaseModel):
    id: int
    start: datetime
    end: datetime
    status: str
    kind: VisitKind
    reason: str | None
    practitioner: PractitionerRef
    cancelled_at: datetime | None
    #: Set on an appointment a reschedule replaced: the new appointment's id.
    replaced_by_id: int | None
    #: Until when it can be cancelled or rescheduled online (None: no longer, or never).
    changeable_until: datetime | None
    can_change: bool


class AppointmentsOut(BaseModel):
    upcoming: list[AppointmentOut]
    past: list[AppointmentOut]
    clinic: ClinicRulesOut
