"""Request and response shapes of lab results (patient side and console)."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from rtc_server.portal.labs.models import LabState

#: What the Medical Records page tells patients about waiting for results.
TURNAROUND = ("Results typically take two to four days after your test. "
              "Most results appear here as soon as they are ready.")
HELD_EXPLAINED = ("For the tests listed below, a clinician reviews the result first and "
                  "releases it to you, often with a note. You are notified when that happens.")
LOINC_CODE = re.compile(r"^[0-9]{1,7}-[0-9]$")
MAX_NOTE = 2000


def _text(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def check_code(value: str) -> str:
    if not LOINC_CODE.match(value):
        raise ValueError("Enter a LOINC code such as 4548-4.")
    return value


class LabPoint(BaseModel):
    """One value of a repeated test, for its history chart."""

    id: int
    effective_at: datetime | None
    value: float | None
    flag: str | None


class LabResultOut(BaseModel):
    id: int
    code: str | None
    display: str
    value: float | None
    value_text: str | None
    unit: str | None
    reference_low: float | None
    reference_high: float | None
    reference_range: str | None
    #: H, HH, L, LL, A, AA (out of range) or None.
    flag: str | None
    flag_label: str | None
    effective_at: datetime | None
    released_at: datetime | None
    #: The reviewing clinician's note, if they left one.
    note: str | None
    #: Released and not yet opened by the patient.
    new: bool


class LabTestOut(BaseModel):
    """A test (one LOINC code) with its latest result and its history, oldest first."""

    code: str | None
    display: str
    unit: str | None
    latest: LabResultOut
    history: list[LabPoint]


class HeldTestOut(BaseModel):
    code: str
    display: str
    reason: str


class LabsOut(BaseModel):
    turnaround: str = TURNAROUND
    held_explained: str = HELD_EXPLAINED
    tests: list[LabTestOut]
    new_count: int
    held_tests: list[HeldTestOut]


class LabDetailOut(BaseModel):
    result: LabResultOut
    history: list[LabPoint]


# --- console -------------------------------------------------------------------------

class PatientRef(BaseModel):
    id: int
    name: str
    birth_date: str


class ReviewItemOut(BaseModel):
    """A held result waiting for a clinician."""

    id: int
    patient: PatientRef
    code: str | None
    display: str
    value: float | None
    value_text: str | None
    unit: str | None
    reference_range: str | None
    flag: str | None
    flag_label: str | None
    effective_at: datetime | None
    held_at: datetime | None
    #: Why this patient's chart is open to you: care_team or cross_cover.
    access: str


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=MAX_NOTE)

    _note = field_validator("note", mode="before")(_text)

    @field_validator("note")
    @classmethod
    def _blank(cls, value: str | None) -> str | None:
        return value or None


class ReleasedOut(BaseModel):
    id: int
    patient_id: int
    state: LabState
    released_at: datetime | None
    note: str | None


class HoldRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=32)
    display: str = Field(default="", max_length=200)
    reason: str = Field(min_length=3, max_length=300)

    _strip = field_validator("code", "display", "reason", mode="before")(_text)
    _code = field_validator("code")(check_code)


class HoldRuleOut(BaseModel):
    code: str
    display: str
    reason: str
    set_at: datetime | None


class HoldRulesOut(BaseModel):
    #: The default: results of every other test are released at once.
    default: str = "release"
    holds: list[HoldRuleOut]


class ResultIn(BaseModel):
    """A result entered by a clinician (a numeric value with its unit, or a text value)."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=32)
    display: str = Field(min_length=1, max_length=200)
    value: float | None = Field(default=None, allow_inf_nan=False)
    value_text: str | None = Field(default=None, max_length=200)
    unit: str | None = Field(default=None, max_length=40)
    reference_low: float | None = Field(default=None, allow_inf_nan=False)
    reference_high: float | None = Field(default=None, allow_inf_nan=False)
    #: When the specimen was taken; default now.
    effective_at: AwareDatetime | None = None

    _strip = field_validator("code", "display", "value_text", "unit", mode="before")(_text)
    _code = field_validator("code")(check_code)

    @model_validator(mode="after")
    def _a_value(self) -> ResultIn:
        if self.value is None and not self.value_text:
            raise ValueError("Enter a value (a number with its unit, or text).")
        if (self.reference_low is not None and self.reference_high is not None
                and self.reference_low > self.reference_high):
            raise ValueError("The low end of the reference range is above the high end.")
        return self


class EnteredOut(BaseModel):
    id: int
    patient_id: int
    state: LabState
