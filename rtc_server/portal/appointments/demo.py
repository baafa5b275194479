"""Published hours for the demo clinic, so a newcomer finds bookable times beyond
the two weeks of slots the demo bundle imports.

``rtc-server demo`` calls, after importing the bundle::

    async with factory() as session:
        await publish_demo_hours(session, settings)
        await session.commit()

Every practitioner with an imported schedule gets weekday hours matching the
imported slots (9:00-12:00 and 13:00-17:00, 30-minute visits, in the schedule's
zone); Friday afternoons are video visits only, so both kinds of visit show.
Where an imported slot already covers a time, the slot is what patients book
(see ``availability``), so nothing is offered twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.config import Settings
from rtc_server.console.availability import publish_hours
from rtc_server.db import utcnow
from rtc_server.portal.appointments.availability import AvailabilityRules, HoursBlock
from rtc_server.portal.appointments.models import ProviderAvailability
from rtc_server.records.models import Schedule, VisitKind

BOTH = [VisitKind.in_person, VisitKind.video]


def demo_rules(time_zone: str) -> AvailabilityRules:
    weekly = []
    for day in range(5):
        weekly.append(HoursBlock(weekday=day, start="09:00", end="12:00", kinds=BOTH))
        afternoon = [VisitKind.video] if day == 4 else BOTH
        weekly.append(HoursBlock(weekday=day, start="13:00", end="17:00", kinds=afternoon))
    return AvailabilityRules(visit_minutes=30, time_zone=time_zone, weekly=weekly)


async def publish_demo_hours(db: AsyncSession, settings: Settings, now: datetime | None = None) -> int:
    """Publish the demo hours for each practitioner with an imported schedule and no
    hours yet (in the caller's transaction); how many got hours."""
    have = set((await db.exec(select(ProviderAvailability.practitioner_id))).all())
    schedules = (await db.exec(select(Schedule).order_by(col(Schedule.id)))).all()
    done: set[int] = set()
    for schedule in schedules:
        pid = schedule.practitioner_id
        if pid in have or pid in done:
            continue
        rules = demo_rules(schedule.time_zone or settings.clinic_timezone)
        await publish_hours(db, pid, rules, updated_by=None, now=now or utcnow())
        done.add(pid)
    return len(done)
