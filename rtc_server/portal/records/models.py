"""Cross-cover access to a chart (migration 0006).

A provider reads the charts of their own patients (``access``). To read another
patient's chart they type why (covering for a colleague, on call...): that
opens the chart to them for ``CROSS_COVER_HOURS`` and is audited, and so is
every read under it. The reason is kept here, not in the audit log (whose rows
hold no free text); it is the provider's words, not the patient's record.

No ``from __future__ import annotations`` here: SQLModel resolves column types
from the real annotations.
"""

from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer
from sqlmodel import Field, SQLModel


class ChartAccess(SQLModel, table=True):
    __tablename__ = "chart_access"
    __table_args__ = (Index("ix_chart_access_user_patient", "user_id", "patient_id", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id", ondelete="CASCADE"), nullable=False))
    patient_id: int = Field(
        sa_column=Column(Integer, ForeignKey("patient.id", ondelete="CASCADE"), nullable=False,
                         index=True))
    reason: str = Field(max_length=500)
    granted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
