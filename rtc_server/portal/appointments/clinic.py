"""The clinic's booking rules, read from ``Settings``.

Cancellation cut-off, reminder offsets, how far ahead patients may book and
the clinic's phone number are clinic choices (``RTC_APPOINTMENT_*``,
``RTC_CLINIC_PHONE``). Until every one of them is a ``Settings`` field the
defaults below apply; they are read in this one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from rtc_server.config import Settings

DEFAULT_CANCEL_CUTOFF_HOURS = 24
DEFAULT_REMINDER_HOURS = (72, 24)
DEFAULT_BOOKING_WEEKS = 8
#: Patients book at least this far ahead, so the clinic sees a booking before the visit.
DEFAULT_MIN_NOTICE_MINUTES = 60


@dataclass(frozen=True)
class ClinicRules:
    name: str
    time_zone: str
    phone: str | None
    cancel_cutoff: timedelta
    reminder_hours: tuple[int, ...]
    booking_horizon: timedelta
    min_notice: timedelta


def _setting(settings: Settings, name: str, default: Any) -> Any:
    value = getattr(settings, name, None)
    return default if value is None else value


def clinic_rules(settings: Settings) -> ClinicRules:
    hours = _setting(settings, "appointment_reminder_hours", DEFAULT_REMINDER_HOURS)
    return ClinicRules(
        name=settings.clinic_name,
        time_zone=settings.clinic_timezone,
        phone=_setting(settings, "clinic_phone", None) or None,
        cancel_cutoff=timedelta(
            hours=_setting(settings, "appointment_cancel_cutoff_hours", DEFAULT_CANCEL_CUTOFF_HOURS)
        ),
        reminder_hours=tuple(sorted({int(h) for h in hours if int(h) > 0}, reverse=True)),
        booking_horizon=timedelta(
            weeks=_setting(settings, "appointment_booking_weeks", DEFAULT_BOOKING_WEEKS)
        ),
        min_notice=timedelta(
            minutes=_setting(settings, "appointment_min_notice_minutes", DEFAULT_MIN_NOTICE_MINUTES)
        ),
    )


class ClinicRulesOut(BaseModel):
    """What the Appointments page shows about the clinic's rules."""

    clinic_name: str
    time_zone: str
    phone: str | None
    cancel_cutoff_hours: int
    booking_weeks: int

    @classmethod
    def of(cls, rules: ClinicRules) -> ClinicRulesOut:
        return cls(
            clinic_name=rules.name, time_zone=rules.time_zone, phone=rules.phone,
            cancel_cutoff_hours=int(rules.cancel_cutoff.total_seconds() // 3600),
            booking_weeks=int(rules.booking_horizon.days // 7),
        )
