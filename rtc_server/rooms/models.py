"""Tables of virtual visits (migration 0008).

- ``Visit``: one video visit between a patient and a provider (the practitioner
  whose waiting room it sits in), from an appointment of kind ``video`` or
  started by the provider without one. Keeps start, end and who took part; no
  media is ever recorded. ``status`` is ``open`` until the provider ends it.
- ``Participant``: one person's place in a visit. ``state`` is ``waiting``
  (checked in, in the waiting room), ``admitted`` (may enter the call room) or
  ``left``; UNIQUE(visit_id, user_id) means one row per person, and admission
  is a conditional UPDATE (``WHERE state = 'waiting'``), so two providers
  clicking Admit at once admit once. A patient's check-in stores the consent
  text's version and the time it was accepted. ``peer_id`` is the signaling
  connection the person is in the call with (one at a time); presence lives
  here, not in one instance's memory.
- ``DeviceCheck``: the latest results of a person's device and connection
  check, so staff see who is ready.
- ``VisitInvite``: a single-use, expiring link for a third or fourth
  participant (an interpreter, a family member), stored as a hash. Redeeming
  it makes a guest account and a guest session limited to that visit (its
  token, too, stored only as a hash: ``session_hash``); see ``rooms.guests``.
- ``WaitingDisplay``: a clinic screen paired by staff with a short code; it
  then reads its queue (ticket numbers only) with a device token (a hash).

States are short strings, not database enums (a new state is a code change,
not a migration). No ``from __future__ import annotations`` here: SQLModel
resolves column types from the real annotations.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

REASON_MAX = 500
NOTE_MAX = 200
PEER_ID_MAX = 32
LABEL_MAX = 80
#: People in one visit at most (the mesh between browsers): patient, provider and two guests.
MAX_PARTICIPANTS = 4


class VisitStatus(enum.StrEnum):
    open = "open"
    ended = "ended"


class ParticipantRole(enum.StrEnum):
    patient = "patient"
    provider = "provider"
    guest = "guest"


class ParticipantState(enum.StrEnum):
    waiting = "waiting"
    admitted = "admitted"
    left = "left"


class CheckOutcome(enum.StrEnum):
    good = "good"
    fair = "fair"
    poor = "poor"
    failed = "failed"


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


def _fk(table: str, *, nullable: bool = True, ondelete: str = "CASCADE", index: bool = True,
        unique: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(Integer, ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable,
                         index=index and not unique, unique=unique),
    )


def _state(default: str) -> Any:
    return Field(default=default, sa_column=Column(String(16), nullable=False, index=True))


class Visit(SQLModel, table=True):
    __tablename__ = "visit"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = _fk("patient", nullable=False)
    practitioner_id: int = _fk("practitioner", nullable=False)
    appointment_id: int | None = _fk("appointment", ondelete="SET NULL", unique=True)
    status: str = _state(VisitStatus.open.value)
    scheduled_start: datetime | None = _ts()
    scheduled_end: datetime | None = _ts()
    reason: str | None = Field(default=None, max_length=REASON_MAX)
    #: The pharmacy the patient confirmed at check-in (the ``pharmacy`` table's id;
    #: a plain column so this table does not depend on the pharmacy migration).
    pharmacy_id: int | None = None
    created_by: int | None = _fk("user_account", ondelete="SET NULL", index=False)
    created_at: datetime | None = _ts(nullable=False, index=True)
    #: The first admission: the visit began.
    started_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()
    ended_by: int | None = None


class Participant(SQLModel, table=True):
    __tablename__ = "visit_participant"
    __table_args__ = (UniqueConstraint("visit_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    visit_id: int = _fk("visit", nullable=False, index=False)  # the unique index leads with it
    user_id: int = _fk("user_account", nullable=False)
    role: str = Field(sa_column=Column(String(16), nullable=False))
    state: str = _state(ParticipantState.waiting.value)
    checked_in_at: datetime | None = _ts()
    admitted_at: datetime | None = _ts()
    admitted_by: int | None = None
    left_at: datetime | None = _ts()
    consent_version: str | None = Field(default=None, max_length=32)
    consent_at: datetime | None = _ts()
    #: The signaling connection this person is in the call with, if any.
    peer_id: str | None = Field(default=None, max_length=PEER_ID_MAX)
    peer_at: datetime | None = _ts()
    #: A short note from the provider to a waiting person ("running 10 minutes late").
    note: str | None = Field(default=None, max_length=NOTE_MAX)
    note_at: datetime | None = _ts()
    #: The number waiting-room displays show instead of a name.
    ticket: int | None = None
    #: A guest's label ("Interpreter"); patients and providers show their account's name.
    label: str | None = Field(default=None, max_length=80)
    #: The visit chat's last sequence when this person was admitted (migration 0009): a
    #: guest reads only what was said after it (``rooms.visitchat``).
    chat_from_seq: int | None = None


class DeviceCheck(SQLModel, table=True):
    __tablename__ = "visit_device_check"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _fk("user_account", nullable=False)
    outcome: str = Field(sa_column=Column(String(16), nullable=False))
    rtt_ms: int | None = None
    loss_percent: float | None = None
    bitrate_kbps: int | None = None
    checked_at: datetime | None = _ts(nullable=False, index=True)


class VisitInvite(SQLModel, table=True):
    __tablename__ = "visit_invite"

    id: int | None = Field(default=None, primary_key=True)
    visit_id: int = _fk("visit", nullable=False)
    token_hash: str = Field(max_length=64, unique=True)
    label: str = Field(max_length=80)
    created_by: int | None = _fk("user_account", ondelete="SET NULL", index=False)
    created_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False)
    used_at: datetime | None = _ts()
    #: The guest account the link made.
    user_id: int | None = _fk("user_account", ondelete="SET NULL", index=False)
    #: The guest's session (the ``rtc_guest`` cookie) as a hash; only this visit answers it.
    session_hash: str | None = Field(default=None, max_length=64, unique=True)
    session_expires_at: datetime | None = _ts()
    #: The provider withdrew the link, or removed the guest it let in (migration 0009).
    revoked_at: datetime | None = _ts()


class WaitingDisplay(SQLModel, table=True):
    __tablename__ = "waiting_display"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80)
    #: The waiting room shown; None shows every provider's.
    practitioner_id: int | None = _fk("practitioner", ondelete="SET NULL")
    code_hash: str | None = Field(default=None, max_length=64, unique=True)
    code_expires_at: datetime | None = _ts()
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    created_by: int | None = _fk("user_account", ondelete="SET NULL", index=False)
    created_at: datetime | None = _ts(nullable=False)
    paired_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()
    last_seen_at: datetime | None = _ts()
