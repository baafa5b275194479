"""Tables of prescription refills (migration 0007).

- ``RefillRequest``: one request by a patient to refill one medication on file,
  sent to one pharmacy of the directory. It moves ``requested`` → ``approved``
  → ``sent`` (to the pharmacy), or ``requested`` → ``denied`` / ``cancelled``.
  While it is open (requested or approved, not yet sent) no other request for
  the same medication may exist: a partial unique index, valid on SQLite and
  PostgreSQL, so two submissions at once give one request, decided by the
  database rather than by a read-then-write. The medication's name and
  dosage are copied at request time: what the patient asked for stays what the
  provider sees, even if the record is re-imported meanwhile.
- ``ControlledMedication``: the clinic's additions to the built-in list of
  controlled substances (``controlled``): an RxNorm code or an ingredient name
  that is never refilled online.

No ``from __future__ import annotations`` here: SQLModel resolves column types
from the real annotations.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, text
from sqlmodel import Field, SQLModel


class RefillStatus(enum.StrEnum):
    requested = "requested"
    approved = "approved"  # approved, not yet taken by the pharmacy network
    sent = "sent"  # sent to the pharmacy
    denied = "denied"
    cancelled = "cancelled"  # withdrawn by the patient before a decision


#: A request in one of these states holds its medication: no second request for it.
OPEN_STATUSES = (RefillStatus.requested.value, RefillStatus.approved.value)
_OPEN = text("status IN ('requested', 'approved')")


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


def _fk(table: str, *, nullable: bool = True, ondelete: str = "SET NULL") -> Any:
    return Field(
        default=None,
        sa_column=Column(Integer, ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable,
                         index=True),
    )


class RefillRequest(SQLModel, table=True):
    __tablename__ = "refill_request"
    __table_args__ = (
        Index("uq_refill_request_open_medication", "medication_id", unique=True,
              sqlite_where=_OPEN, postgresql_where=_OPEN),
        Index("ix_refill_request_queue", "practitioner_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = _fk("patient", nullable=False, ondelete="CASCADE")
    medication_id: int = _fk("medication", nullable=False, ondelete="CASCADE")
    #: Whose queue it is in: the prescriber, else the patient's primary practitioner.
    practitioner_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("practitioner.id", ondelete="SET NULL")))
    pharmacy_id: int = _fk("pharmacy", nullable=False, ondelete="RESTRICT")
    requested_by: int | None = _fk("user_account")
    medication_name: str = Field(max_length=300)
    dosage: str | None = Field(default=None, max_length=500)
    #: The patient's note to the provider.
    note: str | None = Field(default=None, max_length=500)
    status: str = Field(default=RefillStatus.requested.value, max_length=16, index=True)
    #: What the provider approved (None: as before).
    quantity: int | None = None
    refills: int | None = None
    #: The provider's note to the pharmacist (approval) or reason (denial), shown to the patient.
    decision_note: str | None = Field(default=None, max_length=500)
    decided_by: int | None = _fk("user_account")
    requested_at: datetime = _ts(nullable=False, index=True)
    decided_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    cancelled_at: datetime | None = _ts()
    send_attempts: int = 0
    #: Why the last send failed (an error class name, never health data).
    send_error: str | None = Field(default=None, max_length=64)


class ControlledMedication(SQLModel, table=True):
    """A clinic addition to the controlled list: an RxNorm ``code``, or an ingredient
    ``name`` matched as a whole word in the medication's name (case-insensitive)."""

    __tablename__ = "controlled_medication"

    id: int | None = Field(default=None, primary_key=True)
    code: str | None = Field(default=None, max_length=32, unique=True)
    name: str | None = Field(default=None, max_length=100, unique=True)
    #: DEA schedule as the clinic records it ("II".."V"), or a note like "state law".
    schedule: str | None = Field(default=None, max_length=32)
    added_by: int | None = None
    added_at: datetime = _ts(nullable=False)
