"""Tables of lab release (migration 0006).

- ``LabHoldRule``: a test code (LOINC) the clinic holds for a clinician's review,
  with the reason it states. A code without a rule is released at once (the
  Cures Act default, see DESIGN.md).
- ``LabRelease``: one row per lab observation once it has been classified
  (``triage``): ``held`` or ``released``. A lab observation **without** a row is
  shown to nobody on the patient's side: every read classifies what is new
  first, and every patient query joins this table on ``state = 'released'``, so
  a held result cannot leak through a path that forgot a filter.
  ``announced`` marks a result the patient is told about ("new" on the
  dashboard until ``opened_at``); history that arrived with an import is not.

No ``from __future__ import annotations`` here: SQLModel resolves column types
from the real annotations.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, Text
from sqlmodel import Field, SQLModel


class LabState(enum.StrEnum):
    held = "held"
    released = "released"


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class LabHoldRule(SQLModel, table=True):
    __tablename__ = "lab_hold_rule"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    display: str = Field(default="", max_length=200)
    #: Shown to patients: why results of this test wait for a clinician.
    reason: str = Field(max_length=300)
    set_by: int | None = None  # user id
    set_at: datetime | None = _ts(nullable=False)


class LabRelease(SQLModel, table=True):
    __tablename__ = "lab_release"
    __table_args__ = (
        Index("ix_lab_release_patient_state", "patient_id", "state", "opened_at"),
        Index("ix_lab_release_state", "state"),
    )

    observation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("observation.id", ondelete="CASCADE"), primary_key=True,
                         autoincrement=False))
    patient_id: int = Field(
        sa_column=Column(Integer, ForeignKey("patient.id", ondelete="CASCADE"), nullable=False))
    state: str = Field(max_length=16)  # a LabState
    held_at: datetime | None = _ts()
    released_at: datetime | None = _ts()
    released_by: int | None = None  # user id of the reviewing clinician
    entered_by: int | None = None  # user id, for results entered in the console
    #: The reviewing clinician's note for the patient, shown with the result.
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    announced: bool = False
    opened_at: datetime | None = _ts()
