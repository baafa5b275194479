"""The FHIR R4 datatypes the importer reads, parsed leniently: unknown elements
are ignored, partial dates are accepted, and every instant becomes aware UTC
(storage is UTC; see ``rtc_server.records.models``)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


def parse_fhir_datetime(value: object) -> object:
    """FHIR dateTime/instant: "2019", "2019-03", "2019-03-13" or a full ISO
    timestamp. Dates become midnight UTC; a time without an offset is read as UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        match = _PARTIAL.match(text)
        if match:
            year, month, day = match.groups()
            return datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("not a FHIR dateTime") from None
    else:
        raise ValueError("not a FHIR dateTime")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_fhir_date(value: object) -> object:
    """FHIR date: "1996", "1996-03" or "1996-03-13" (partial dates take day 1)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        match = _PARTIAL.match(value.strip())
        if match:
            year, month, day = match.groups()
            try:
                return date(int(year), int(month or 1), int(day or 1))
            except ValueError:
                pass
    raise ValueError("not a FHIR date (YYYY-MM-DD)")


FhirDateTime = Annotated[datetime, BeforeValidator(parse_fhir_datetime)]
FhirDate = Annotated[date, BeforeValidator(parse_fhir_date)]
#: FHIR's ``id`` datatype (``rtc_server.fhir.bundle`` checks entry ids with a
#: clearer message before the models see them; this covers contained resources).
FhirId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]


class Element(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Coding(Element):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(Element):
    coding: list[Coding] = Field(default_factory=list)
    text: str | None = None

    def first(self) -> tuple[str | None, str | None, str]:
        """(system, code, display) of the first coding; display falls back to text."""
        coding = self.coding[0] if self.coding else Coding()
        display = coding.display or self.text or coding.code or ""
        return coding.system, coding.code, display

    @property
    def label(self) -> str:
        """What a person reads: the text, else the first coding's display or code."""
        if self.text:
            return self.text
        return self.first()[2]

    def has_code(self, *codes: str) -> bool:
        return any(c.code in codes for c in self.coding)


def first_label(concepts: list[CodeableConcept]) -> str | None:
    return concepts[0].label or None if concepts else None


def first_code(concepts: list[CodeableConcept]) -> str | None:
    """The code (else the label) of the first concept: categories are stored this way."""
    if not concepts:
        return None
    _system, code, display = concepts[0].first()
    return code or display or None


class Identifier(Element):
    system: str | None = None
    value: str | None = None
    type: CodeableConcept | None = None

    def as_json(self) -> dict[str, str | None]:
        kind = None
        if self.type is not None:
            kind = self.type.first()[1] or self.type.text
        return {"system": self.system, "value": self.value, "type": kind}


class Reference(Element):
    reference: str | None = None
    display: str | None = None


class HumanName(Element):
    use: str | None = None
    text: str | None = None
    family: str | None = None
    given: list[str] = Field(default_factory=list)
    prefix: list[str] = Field(default_factory=list)
    suffix: list[str] = Field(default_factory=list)


class Address(Element):
    use: str | None = None
    line: list[str] = Field(default_factory=list)
    city: str | None = None
    state: str | None = None
    postalCode: str | None = None


class ContactPoint(Element):
    system: str | None = None
    value: str | None = None
    use: str | None = None


class Period(Element):
    start: FhirDateTime | None = None
    end: FhirDateTime | None = None


class Quantity(Element):
    value: float | None = None
    unit: str | None = None
    code: str | None = None

    @property
    def unit_label(self) -> str | None:
        return self.unit or self.code


class Extension(Element):
    url: str = ""
    valueCode: str | None = None
    valueString: str | None = None


def pick_address(addresses: list[Address]) -> Address:
    for address in addresses:
        if address.use == "home":
            return address
    return addresses[0] if addresses else Address()


def pick_telecom(points: list[ContactPoint], system: str) -> str | None:
    for point in points:
        if point.system == system and point.value:
            return point.value
    return None
