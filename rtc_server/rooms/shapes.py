"""Request and response shapes of the visits API (no table here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from rtc_server.rooms.models import LABEL_MAX, NOTE_MAX, REASON_MAX
from rtc_server.types import DbId


def _clean_text(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        if any(ord(c) < 32 and c not in "\n\t" for c in value):
            raise ValueError("Use letters, numbers and punctuation only.")
    return value


class CheckInIn(BaseModel):
    """Check in to a visit: an appointment of kind ``video`` (its visit is made
    on first check-in) or a visit the provider started. ``consent_version`` is
    the version of the consent text the patient accepted (``GET /visits``)."""

    model_config = ConfigDict(extra="forbid")
    appointment_id: DbId | None = None
    visit_id: DbId | None = None
    reason: str = Field(min_length=1, max_length=REASON_MAX)
    pharmacy_id: DbId | None = None
    consent_version: str = Field(min_length=1, max_length=32)

    _reason = field_validator("reason", mode="before")(_clean_text)

    @model_validator(mode="after")
    def _one_target(self) -> CheckInIn:
        if (self.appointment_id is None) == (self.visit_id is None):
            raise ValueError("Give either appointment_id or visit_id.")
        return self


class AdmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    participant_id: DbId


class RemoveIn(AdmitIn):
    """The guest to remove from a visit."""


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    participant_id: DbId
    text: str = Field(min_length=1, max_length=NOTE_MAX)

    _text = field_validator("text", mode="before")(_clean_text)


class StartIn(BaseModel):
    """A provider starts a visit now with a patient of theirs (no appointment)."""

    model_config = ConfigDict(extra="forbid")
    patient_id: DbId
    reason: str | None = Field(default=None, max_length=REASON_MAX)

    _reason = field_validator("reason", mode="before")(_clean_text)


class DeviceCheckIn(BaseModel):
    """What the page measured in the device and connection check."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["good", "fair", "poor", "failed"]
    rtt_ms: int | None = Field(default=None, ge=0, le=60_000)
    loss_percent: float | None = Field(default=None, ge=0, le=100)
    bitrate_kbps: int | None = Field(default=None, ge=0, le=1_000_000)


class PractitionerRef(BaseModel):
    id: int
    name: str


class ConsentOut(BaseModel):
    version: str
    text: str


class UpcomingVisitOut(BaseModel):
    appointment_id: int | None
    visit_id: int | None
    start: datetime | None
    end: datetime | None
    practitioner: PractitionerRef
    reason: str | None
    #: From when the patient may check in (15 minutes before the start).
    joinable_from: datetime | None
    joinable: bool
    #: The patient's state in the visit: None (not checked in), waiting, admitted, left.
    state: str | None


class PastVisitOut(BaseModel):
    visit_id: int
    practitioner: PractitionerRef
    scheduled_start: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    participants: list[str]
    #: Chat lines kept with the visit (``GET /visits/{id}/messages`` reads them).
    message_count: int = 0


class VisitsOut(BaseModel):
    upcoming: list[UpcomingVisitOut]
    past: list[PastVisitOut]
    consent: ConsentOut
    join_early_minutes: int


class ParticipantOut(BaseModel):
    id: int
    role: str
    state: str
    name: str


class VisitOut(BaseModel):
    id: int
    status: str
    practitioner: PractitionerRef
    #: The patient's name (shown to the provider and to the patient themself).
    patient_name: str
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    reason: str | None
    #: The caller's own role and participant row (None before check-in).
    my_role: str
    my_participant_id: int | None
    my_state: str | None
    participants: list[ParticipantOut]


class PlaceOut(BaseModel):
    """A waiting patient's view of the queue: numbers only, nobody else's details."""

    visit_id: int
    state: str | None
    position: int | None
    estimated_wait_minutes: int | None
    note: str | None
    note_at: datetime | None
    ticket: int | None
    status: str


class WaitingOut(BaseModel):
    participant_id: int
    visit_id: int
    patient_name: str
    role: str
    reason: str | None
    checked_in_at: datetime | None
    scheduled_start: datetime | None
    position: int
    estimated_wait_minutes: int
    device_check: str | None
    device_checked_at: datetime | None
    note: str | None
    ticket: int | None


class InVisitOut(BaseModel):
    visit_id: int
    patient_name: str
    started_at: datetime | None


class WaitingRoomOut(BaseModel):
    practitioner: PractitionerRef
    waiting: list[WaitingOut]
    in_visit: list[InVisitOut]


class IceServersOut(BaseModel):
    ice_servers: list[dict[str, Any]]
    ice_transport_policy: Literal["all", "relay"]


class DisplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80)
    #: The waiting room shown (staff; a provider's displays show their own). None: every provider's.
    practitioner_id: DbId | None = None

    _name = field_validator("name", mode="before")(_clean_text)


class PairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=32)


class DisplayOut(BaseModel):
    id: int
    name: str
    practitioner_id: int | None
    #: Shown once, when the display is added.
    code: str | None
    code_expires_at: datetime | None
    paired_at: datetime | None
    revoked_at: datetime | None
    last_seen_at: datetime | None


class PairedOut(BaseModel):
    token: str
    name: str


class BoardOut(BaseModel):
    """A lobby screen's content: ticket numbers only."""

    name: str
    waiting: list[int]
    now_seeing: list[int]
    updated_at: datetime


class InviteIn(BaseModel):
    """Invite a guest to a visit: how the call shows them ("Interpreter"), and
    optionally an address to mail the link to."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=LABEL_MAX)
    email: EmailStr | None = Field(default=None, max_length=254)

    _label = field_validator("label", mode="before")(_clean_text)

    @field_validator("email", mode="before")
    @classmethod
    def _blank_email(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class InviteOut(BaseModel):
    id: int
    label: str
    #: The link, shown once (only a hash of its token is kept).
    url: str
    expires_at: datetime
    emailed: bool


class InviteStateOut(BaseModel):
    """An invitation as its provider's visit page lists it (never the link itself)."""

    id: int
    label: str
    #: ``pending`` (may still be used), ``used``, ``expired`` or ``revoked``.
    state: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    #: The guest the link let in, once used.
    participant_id: int | None


class InvitesOut(BaseModel):
    invites: list[InviteStateOut]


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=128)


class RedeemedOut(BaseModel):
    visit_id: int
    expires_at: datetime


class VisitMessageIn(BaseModel):
    """A chat line in a visit. ``client_id`` is the sender's own id for it: sending
    it again (after a lost answer) stores it once."""

    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=2000)
    client_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")

    @field_validator("body", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


class VisitMessagesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Only messages after this sequence number (the last one the page has).
    after: int = Field(default=0, ge=0, le=2**31 - 1)


class VisitMessageOut(BaseModel):
    id: int
    seq: int
    #: How the visit shows the sender (a guest sees the patient's first name only).
    sender: str
    role: str
    mine: bool
    body: str
    client_id: str
    sent_at: datetime


class VisitMessagesOut(BaseModel):
    messages: list[VisitMessageOut]
    #: The highest sequence in the visit's chat (0: none yet).
    last_seq: int


class VisitSentOut(BaseModel):
    id: int
    seq: int
    client_id: str
    sent_at: datetime
    #: False for a resend of a message already stored (same id and seq as the first).
    created: bool
