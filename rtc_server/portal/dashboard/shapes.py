"""The Dashboard's one response."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class DashAppointment(BaseModel):
    id: int
    start: datetime
    end: datetime
    kind: str
    status: str
    practitioner: str


class DashResult(BaseModel):
    """A released result the patient has not opened yet (the value is on its own page)."""

    id: int
    display: str
    effective_at: datetime | None
    released_at: datetime | None
    #: Out of range: H, L, A... (the page says "outside the reference range").
    flag: str | None
    note: bool


class Section(BaseModel):
    """A part of the portal that is not built yet says so (``available`` false)."""

    available: bool
    items: list[dict[str, Any]] = Field(default_factory=list)
    unread: int = 0


class Action(BaseModel):
    kind: str
    text: str
    href: str
    at: datetime | None = None


class DashboardOut(BaseModel):
    appointments: list[DashAppointment]
    upcoming_count: int
    new_results: list[DashResult]
    messages: Section
    refills: Section
    actions: list[Action]
    generated_at: datetime
