"""Tables of the pharmacy directory (migration 0007).

- ``Pharmacy``: a pharmacy the clinic sends prescriptions to. Admins add and
  edit rows; rows loaded from FHIR ``Organization`` resources of type pharmacy
  keep ``organization_id`` so loading again updates them in place. A pharmacy
  is deactivated, never deleted: past refill requests still name it.
- ``PreferredPharmacy``: the pharmacy a patient chose last, offered first on
  their next refill request.

No ``from __future__ import annotations`` here: SQLModel resolves column types
from the real annotations.
"""

from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Integer
from sqlmodel import Field, SQLModel


class Pharmacy(SQLModel, table=True):
    __tablename__ = "pharmacy"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    #: ``name`` folded for searching (lower case, single spaces).
    name_norm: str = Field(max_length=200, index=True)
    phone: str | None = Field(default=None, max_length=40)
    fax: str | None = Field(default=None, max_length=40)
    address_line: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=50)
    zip: str | None = Field(default=None, max_length=20)
    #: The pharmacy's NCPDP number (7 digits), how pharmacy networks address it.
    ncpdp_id: str | None = Field(default=None, max_length=7, unique=True)
    organization_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("organization.id", ondelete="SET NULL"), unique=True),
    )
    active: bool = True
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_by: int | None = None  # user id; None for an import or the demo


class PreferredPharmacy(SQLModel, table=True):
    __tablename__ = "preferred_pharmacy"

    patient_id: int = Field(
        sa_column=Column(Integer, ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True,
                         autoincrement=False))
    pharmacy_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pharmacy.id", ondelete="CASCADE"), nullable=False,
                         index=True))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
