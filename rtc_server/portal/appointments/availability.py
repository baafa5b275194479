"""Open times from a provider's published hours, without I/O.

A provider publishes weekly hours (blocks per weekday, each offering in-person
and/or video visits), a visit length, breaks and days off, in a time zone. The
grid of bookable times starts at each block's start, skips breaks (the grid
starts again where a break ends) and days off, and is laid out in the zone's
wall-clock time, so 9:00 stays 9:00 across a daylight-saving change; a wall time
that does not exist that day (the spring-forward gap) is skipped.

``open_times`` merges that grid with the slots on file:
- a slot imported from FHIR (any slot not of the provider's own schedule) owns
  its period: it is open when its status is ``free`` and no appointment holds
  it or overlaps it, and no grid time may overlap it;
- a grid time is open when no held appointment overlaps it.

The caller passes what is on file; nothing here reads the database, so the same
function answers "what can I book?" and, inside the booking transaction, "is
this time still bookable?".
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rtc_server.records.models import SlotStatus, VisitKind
from rtc_server.rules import check_zone

ALL_KINDS: tuple[str, ...] = (VisitKind.in_person.value, VisitKind.video.value)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
MIN_VISIT_MINUTES = 10
MAX_VISIT_MINUTES = 240


def minutes_of(hhmm: str) -> int:
    """"09:30" -> 570; "24:00" (end of day) -> 1440."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _check_hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError("Use a 24-hour time such as 09:00 or 17:30.")
    return value


# --- the published shape (the console's body, stored as JSON) ----------------

class HoursBlock(BaseModel):
    """Working hours on one weekday (0 = Monday) and the visit kinds offered in them."""

    model_config = ConfigDict(extra="forbid")
    weekday: int = Field(ge=0, le=6)
    start: str = Field(max_length=5)
    end: str = Field(max_length=5)
    kinds: list[VisitKind] = Field(min_length=1, max_length=2)

    _hhmm = field_validator("start", "end")(_check_hhmm)

    @model_validator(mode="after")
    def _ordered(self) -> HoursBlock:
        if minutes_of(self.end) <= minutes_of(self.start):
            raise ValueError("The end of working hours must be after their start.")
        self.kinds = sorted(set(self.kinds), key=ALL_KINDS.index)
        return self


class BreakBlock(BaseModel):
    """A break on one weekday, or on every working day when ``weekday`` is null."""

    model_config = ConfigDict(extra="forbid")
    weekday: int | None = Field(default=None, ge=0, le=6)
    start: str = Field(max_length=5)
    end: str = Field(max_length=5)

    _hhmm = field_validator("start", "end")(_check_hhmm)

    @model_validator(mode="after")
    def _ordered(self) -> BreakBlock:
        if minutes_of(self.end) <= minutes_of(self.start):
            raise ValueError("The end of a break must be after its start.")
        return self


class AvailabilityRules(BaseModel):
    """What a provider publishes. Blocks on one weekday may not overlap."""

    model_config = ConfigDict(extra="forbid")
    visit_minutes: int = Field(ge=MIN_VISIT_MINUTES, le=MAX_VISIT_MINUTES)
    time_zone: str = Field(max_length=64)
    weekly: list[HoursBlock] = Field(default_factory=list, max_length=42)
    breaks: list[BreakBlock] = Field(default_factory=list, max_length=42)
    days_off: list[date] = Field(default_factory=list, max_length=400)
    published: bool = True

    _zone = field_validator("time_zone")(check_zone)

    @model_validator(mode="after")
    def _no_overlap(self) -> AvailabilityRules:
        by_day: dict[int, list[tuple[int, int]]] = {}
        for block in self.weekly:
            by_day.setdefault(block.weekday, []).append((minutes_of(block.start), minutes_of(block.end)))
        for spans in by_day.values():
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start < end:
                    raise ValueError("Working hours on the same day overlap.")
        self.weekly.sort(key=lambda b: (b.weekday, minutes_of(b.start)))
        self.days_off = sorted(set(self.days_off))
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @classmethod
    def from_row(cls, row: Any) -> AvailabilityRules:
        """Rules from a stored ``ProviderAvailability`` row (validated again)."""
        return cls(
            visit_minutes=row.visit_minutes, time_zone=row.time_zone, weekly=row.weekly,
            breaks=row.breaks, days_off=row.days_off, published=row.published,
        )


# --- what is on file ----------------------------------------------------------

@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SlotOnFile:
    id: int
    start: datetime
    end: datetime
    status: str
    #: True for a slot booked from these published hours (the provider's own schedule).
    derived: bool


@dataclass(frozen=True)
class OpenTime:
    start: datetime  # aware UTC
    end: datetime
    kinds: tuple[str, ...]
    #: The imported slot this time is, or None for a time from published hours.
    slot_id: int | None = None


class _Intervals:
    """Periods, for fast "does anything overlap [start, end)?" questions."""

    def __init__(self, periods: Iterable[Period]) -> None:
        items = sorted((p.start, p.end) for p in periods)
        self._starts = [s for s, _ in items]
        self._items = items
        self._longest = max((e - s for s, e in items), default=timedelta(0))

    def overlaps(self, start: datetime, end: datetime) -> bool:
        hi = bisect.bisect_left(self._starts, end)
        lo = bisect.bisect_left(self._starts, start - self._longest)
        return any(s < end and start < e for s, e in self._items[lo:hi])


def _local(day: date, minute: int, zone: ZoneInfo) -> datetime | None:
    """The instant of wall time ``minute`` after midnight of ``day``, or None in a DST gap."""
    wall = datetime.combine(day, time.min) + timedelta(minutes=minute)
    moment = wall.replace(tzinfo=zone)
    if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return moment.astimezone(UTC)


def _subtract(span: tuple[int, int], cuts: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    parts = [span]
    for cut_start, cut_end in cuts:
        nxt: list[tuple[int, int]] = []
        for s, e in parts:
            if cut_end <= s or e <= cut_start:
                nxt.append((s, e))
                continue
            if s < cut_start:
                nxt.append((s, cut_start))
            if cut_end < e:
                nxt.append((cut_end, e))
        parts = nxt
    return parts


def grid_for_day(rules: AvailabilityRules, day: date) -> list[OpenTime]:
    """Every time the published hours offer on ``day`` (wall-clock date in the rules' zone)."""
    if not rules.published or day in rules.days_off:
        return []
    zone = rules.zone
    step = rules.visit_minutes
    cuts = [
        (minutes_of(b.start), minutes_of(b.end))
        for b in rules.breaks if b.weekday is None or b.weekday == day.weekday()
    ]
    out: list[OpenTime] = []
    for block in rules.weekly:
        if block.weekday != day.weekday():
            continue
        kinds = tuple(k.value for k in block.kinds)
        for s, e in _subtract((minutes_of(block.start), minutes_of(block.end)), cuts):
            minute = s
            while minute + step <= e:
                start = _local(day, minute, zone)
                if start is not None:
                    out.append(OpenTime(start, start + timedelta(minutes=step), kinds))
                minute += step
    return out


def grid(rules: AvailabilityRules, start: datetime, end: datetime) -> list[OpenTime]:
    """Grid times starting in [start, end)."""
    zone = rules.zone
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    out: list[OpenTime] = []
    while day <= last:
        out += [t for t in grid_for_day(rules, day) if start <= t.start < end]
        day += timedelta(days=1)
    return out


def open_times(
    rules: AvailabilityRules | None,
    *,
    start: datetime,
    end: datetime,
    slots: Sequence[SlotOnFile],
    held: Sequence[Period],
    held_slot_ids: Iterable[int] = (),
    kind: str | None = None,
) -> list[OpenTime]:
    """Bookable times starting in [start, end), earliest first (see the module docstring).

    ``held`` are the periods of appointments that hold their time;
    ``held_slot_ids`` the slots they hold.
    """
    taken = _Intervals(held)
    taken_ids = set(held_slot_ids)
    imported = [s for s in slots if not s.derived]
    out = [
        OpenTime(s.start, s.end, ALL_KINDS, s.id)
        for s in imported
        if start <= s.start < end and s.status == SlotStatus.free.value
        and s.id not in taken_ids and not taken.overlaps(s.start, s.end)
    ]
    if rules is not None:
        owned = _Intervals(Period(s.start, s.end) for s in imported)
        out += [
            t for t in grid(rules, start, end)
            if not taken.overlaps(t.start, t.end) and not owned.overlaps(t.start, t.end)
        ]
    if kind is not None:
        out = [t for t in out if kind in t.kinds]
    out.sort(key=lambda t: t.start)
    return out


def offered_kinds(rules: AvailabilityRules | None) -> tuple[str, ...]:
    if rules is None or not rules.published:
        return ()
    kinds = {k.value for b in rules.weekly for k in b.kinds}
    return tuple(k for k in ALL_KINDS if k in kinds)
