"""Tables of the Appointments tab (migration 0004).

- ``ProviderAvailability``: what a provider publishes in the console (weekly
  hours, visit length, visit kinds per block, breaks, days off). Open times are
  computed from it on read; a ``Slot`` row is inserted only when a time is
  booked, under the ``slot`` unique (practitioner, start) constraint, and the
  ``appointment`` partial unique indexes decide who holds it.
- ``IdempotencyRecord``: the first answer to a request sent with an
  ``Idempotency-Key``, unique per (user, key), so a retry gets that answer again.
- ``AppointmentReminder``: one row per (appointment, offset); an instance claims
  a due row in the database before sending, so each reminder goes once.

No ``from __future__ import annotations`` here: SQLModel resolves column types
from the real annotations.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


def _fk(table: str, *, nullable: bool = True, ondelete: str = "CASCADE", unique: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable,
            index=not unique, unique=unique,
        ),
    )


class ProviderAvailability(SQLModel, table=True):
    """A provider's published hours. ``weekly`` is ``[{weekday: 0-6 (Monday 0),
    start: "HH:MM", end: "HH:MM", kinds: ["in_person", "video"]}]``, ``breaks``
    is ``[{weekday: 0-6 or null for every day, start, end}]`` and ``days_off``
    is ``["YYYY-MM-DD", ...]``, all in ``time_zone``. ``schedule_id`` is the
    ``Schedule`` row that slots booked from these hours belong to, which is how
    they are told apart from slots imported from FHIR."""

    __tablename__ = "provider_availability"

    id: int | None = Field(default=None, primary_key=True)
    practitioner_id: int = _fk("practitioner", nullable=False, unique=True)
    schedule_id: int = _fk("schedule", nullable=False)
    visit_minutes: int = 30
    time_zone: str = Field(max_length=64)
    weekly: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    breaks: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    days_off: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    published: bool = True
    updated_at: datetime | None = _ts()
    updated_by: int | None = None  # user id, for the console's "last changed by"


class IdempotencyRecord(SQLModel, table=True):
    """The first result of a request that carried ``Idempotency-Key``.

    ``request_hash`` covers the operation and its body, so the same key sent
    with a different request is told apart (and refused) from a retry.
    """

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _fk("user_account", nullable=False)
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int = 200
    response: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = _ts(nullable=False, index=True)


class AppointmentReminder(SQLModel, table=True):
    """A reminder due ``offset_hours`` before an appointment.

    ``claimed_by``/``claimed_at`` are set by one instance in a conditional
    update before it sends; ``sent_at`` and ``outcome`` (sent, skipped) after.
    """

    __tablename__ = "appointment_reminder"
    __table_args__ = (UniqueConstraint("appointment_id", "offset_hours"),)

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: int = _fk("appointment", nullable=False)
    offset_hours: int
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    outcome: str | None = Field(default=None, max_length=16)
    channels: str | None = Field(default=None, max_length=32)  # "email,sms": what was used
