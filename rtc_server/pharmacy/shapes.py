"""Request and response shapes of the pharmacy directory."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from rtc_server.types import DbId


def _blank_is_none(value: str | None) -> str | None:
    return value or None


Text = Annotated[str, StringConstraints(strip_whitespace=True)]
Phone = Annotated[
    str | None,
    StringConstraints(strip_whitespace=True, max_length=40, pattern=r"^(|\+?[0-9 ().-]{7,40})$"),
    AfterValidator(_blank_is_none),
]


class PharmacyOut(BaseModel):
    id: int
    name: str
    phone: str | None
    fax: str | None
    address_line: str | None
    city: str | None
    state: str | None
    zip: str | None
    ncpdp_id: str | None
    active: bool
    #: Loaded from the records on file (a FHIR Organization of type pharmacy).
    from_records: bool
    updated_at: datetime


class PharmacyIn(BaseModel):
    """A pharmacy an admin adds (every field but the name may stay empty)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[Text, StringConstraints(min_length=2, max_length=200)]
    phone: Phone = None
    fax: Phone = None
    address_line: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=200),
                            AfterValidator(_blank_is_none)] = None
    city: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=100),
                    AfterValidator(_blank_is_none)] = None
    state: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=50),
                     AfterValidator(_blank_is_none)] = None
    zip: Annotated[str | None, StringConstraints(strip_whitespace=True, pattern=r"^(|[0-9]{5}(-[0-9]{4})?)$"),
                   AfterValidator(_blank_is_none)] = None
    ncpdp_id: Annotated[str | None, StringConstraints(strip_whitespace=True, pattern=r"^(|[0-9]{7})$"),
                        AfterValidator(_blank_is_none)] = None
    active: bool = True


class PharmacySearch(BaseModel):
    """``q``: words of the name, street, town or ZIP code (all must match); empty lists all."""

    model_config = ConfigDict(extra="forbid")
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    include_inactive: bool = False
    limit: int = Field(default=20, ge=1, le=100)


class PreferredIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pharmacy_id: DbId


class PreferredOut(BaseModel):
    """The patient's preferred pharmacy, or null when none is set (or it left the directory)."""

    pharmacy: PharmacyOut | None


class LoadedOut(BaseModel):
    """What loading the directory from the records on file did."""

    added: int
    updated: int
