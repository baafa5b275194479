"""Request and response shapes of prescription refills (patient and console)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from rtc_server.pharmacy.shapes import PharmacyOut
from rtc_server.portal.refills.models import RefillStatus
from rtc_server.types import DbId


def _blank_is_none(value: str | None) -> str | None:
    return value or None


Note = Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=500),
                 AfterValidator(_blank_is_none)]


# --- the patient's side ---------------------------------------------------------------

class MedicationChoice(BaseModel):
    """A medication on the patient's active list, and whether it can be requested online."""

    id: int
    name: str
    dosage: str | None
    prescriber: str | None
    #: A controlled substance: refills are arranged by phone, never online.
    controlled: bool
    #: The open request for it, if any (one at a time).
    open_request_id: int | None


class StatusStep(BaseModel):
    """One step of a request's history, for the patient's timeline."""

    status: RefillStatus
    at: datetime


class RefillOut(BaseModel):
    id: int
    medication_id: int
    medication_name: str
    dosage: str | None
    pharmacy: PharmacyOut
    note: str | None
    status: RefillStatus
    #: Who decides it (the prescriber, else the patient's primary provider).
    provider: str | None
    quantity: int | None
    refills: int | None
    #: The provider's reason (denied) or note (approved).
    decision_note: str | None
    requested_at: datetime
    decided_at: datetime | None
    sent_at: datetime | None
    cancelled_at: datetime | None
    steps: list[StatusStep]


class RefillsOut(BaseModel):
    """Everything the refill page shows."""

    medications: list[MedicationChoice]
    requests: list[RefillOut]
    preferred_pharmacy: PharmacyOut | None
    clinic_name: str
    clinic_phone: str | None


class RefillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    medication_id: DbId
    pharmacy_id: DbId
    note: Note = None
    #: Offer this pharmacy first next time.
    remember_pharmacy: bool = True


# --- the console's side ---------------------------------------------------------------

class PatientRef(BaseModel):
    id: int
    name: str
    birth_date: date
    mrn: str | None


class QueueItemOut(BaseModel):
    """A request as the prescriber sees it."""

    id: int
    patient: PatientRef
    medication_id: int
    medication_name: str
    dosage: str | None
    #: What the prescription on file allows (refills left, when it was written).
    refills_on_file: int | None
    prescribed_at: datetime | None
    pharmacy: PharmacyOut
    note: str | None
    status: RefillStatus
    assigned_to_you: bool
    quantity: int | None
    refills: int | None
    decision_note: str | None
    decided_by: str | None
    requested_at: datetime
    decided_at: datetime | None
    sent_at: datetime | None
    send_attempts: int
    #: The last send failed and the request waits to be sent again.
    send_failed: bool


class QueueQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: ``open``: waiting for a decision or for the pharmacy; ``done``: decided in the last 30 days.
    status: Literal["open", "done"] = "open"


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Units to dispense (tablets, inhalers...); empty keeps the prescription's.
    quantity: int | None = Field(default=None, ge=1, le=1000)
    #: Further refills the pharmacy may give; empty keeps the prescription's.
    refills: int | None = Field(default=None, ge=0, le=12)
    #: A note to the pharmacist; the patient sees it too.
    note: Note = None


class DenyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Why (the patient reads it), e.g. "We need to see you before renewing this. Please book a visit."
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=500)]


# --- the clinic's controlled list -------------------------------------------------------

class ControlledIn(BaseModel):
    """An RxNorm code or an ingredient name (or both) the clinic never refills online."""

    model_config = ConfigDict(extra="forbid")
    code: Annotated[str | None, StringConstraints(strip_whitespace=True, pattern=r"^(|[0-9]{1,32})$"),
                    AfterValidator(_blank_is_none)] = None
    name: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=100,
                                                  pattern=r"^(|[A-Za-z][A-Za-z -]{1,99})$"),
                    AfterValidator(_blank_is_none)] = None
    schedule: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=32),
                        AfterValidator(_blank_is_none)] = None

    @model_validator(mode="after")
    def _one_of(self) -> ControlledIn:
        if not self.code and not self.name:
            raise ValueError("Give an RxNorm code or an ingredient name.")
        return self


class ControlledOut(BaseModel):
    id: int
    code: str | None
    name: str | None
    schedule: str | None
