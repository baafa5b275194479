"""Appointment reminders: by email and/or text, at the clinic's offsets before each visit.

Booking adds one ``AppointmentReminder`` row per offset (``RTC_APPOINTMENT_REMINDER_HOURS``,
e.g. 72 and 24 hours) that is still in the future; cancelling drops them. Every
instance runs a ``ReminderWorker``; before sending, an instance claims a due row
with a conditional UPDATE (only one instance's update matches; ``FOR UPDATE SKIP
LOCKED`` keeps PostgreSQL instances from waiting on each other, SQLite has one
writer), so each reminder goes out once. A claim whose instance died is taken
over after ``LEASE`` (at most one duplicate, only if it died between sending and
recording).

The channels are the patient's own choice (Account Settings, "appointment
reminders": email, text or both). Email goes through the mail outbox in the
same transaction that records the reminder; texts through the ``SmsSender``
(by default a mock of the carrier that writes to ``<data dir>/outbox/sms/``).
Neither carries health data: the clinic, the date and time, and a link; never
the provider, the reason or the kind of visit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.models import User, UserStatus
from rtc_server.config import Settings
from rtc_server.db import SessionFactory, as_utc, utcnow
from rtc_server.notify.mail import compose
from rtc_server.notify.outbox import queue_mail
from rtc_server.portal.account.service import notifications_of
from rtc_server.portal.appointments import idempotency
from rtc_server.portal.appointments.models import AppointmentReminder
from rtc_server.portal.appointments.sms import OutboxSmsSender, SmsSender
from rtc_server.records.models import RELEASED_APPOINTMENT_STATUSES, Appointment, Patient

log = logging.getLogger("rtc_server.reminders")

LEASE = timedelta(minutes=10)
POLL_SECONDS = 60.0
BATCH = 20
KIND = "appointment_reminder"


def when_text(start: datetime, zone_name: str) -> str:
    """"Tuesday, December 2 at 2:30 PM EST" in the clinic's zone (named)."""
    local = start.astimezone(ZoneInfo(zone_name))
    hour = local.strftime("%I:%M %p").lstrip("0")
    return f"{local:%A, %B} {local.day} at {hour} {local.tzname()}"


class ReminderWorker:
    """Sends due reminders; one per app instance (see the module docstring)."""

    def __init__(
        self, session_factory: SessionFactory, settings: Settings, *, sms: SmsSender | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._factory = session_factory
        self._settings = settings
        self.sms: SmsSender = sms or OutboxSmsSender(settings.outbox_dir)
        self._poll = poll_seconds
        self._name = uuid.uuid4().hex[:16]
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="appointment-reminders")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
                async with self._factory() as db:
                    await idempotency.purge(db, utcnow())
                    await db.commit()
            except Exception:  # keep going; the next round retries
                log.exception("reminder round failed")
            await asyncio.sleep(self._poll)

    async def run_once(self, now: datetime | None = None) -> int:
        """Send every reminder due at ``now``; how many this instance handled."""
        now = now or utcnow()
        done = 0
        while ids := await self._claim(now):
            for reminder_id in ids:
                await self._deliver(reminder_id, now)
                done += 1
        return done

    async def _claim(self, now: datetime) -> list[int]:
        free = or_(col(AppointmentReminder.claimed_at).is_(None),
                   col(AppointmentReminder.claimed_at) < now - LEASE)
        due = (col(AppointmentReminder.due_at) <= now, col(AppointmentReminder.sent_at).is_(None), free)
        claimed: list[int] = []
        async with self._factory() as db:
            candidates = (await db.exec(
                select(AppointmentReminder.id).where(*due)
                .order_by(col(AppointmentReminder.due_at)).limit(BATCH)
                .with_for_update(skip_locked=True)
            )).all()
            for reminder_id in candidates:
                result = await db.exec(  # type: ignore[call-overload]
                    update(AppointmentReminder)
                    .where(col(AppointmentReminder.id) == reminder_id, *due)
                    .values(claimed_by=self._name, claimed_at=now)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1 and reminder_id is not None:
                    claimed.append(reminder_id)
            await db.commit()
        return claimed

    async def _deliver(self, reminder_id: int, now: datetime) -> None:
        async with self._factory() as db:
            reminder = await db.get(AppointmentReminder, reminder_id)
            if reminder is None or reminder.claimed_by != self._name:
                return
            appt = await db.get(Appointment, reminder.appointment_id)
            start = as_utc(appt.start) if appt else None
            channels: list[str] = []
            if appt is not None and start is not None and start > now \
                    and appt.status not in RELEASED_APPOINTMENT_STATUSES:
                channels = await self._send(db, appt, start)
            reminder.sent_at = now
            reminder.outcome = "sent" if channels else "skipped"
            reminder.channels = ",".join(channels) or None
            db.add(reminder)
            await audit.record(
                db, action="appointment.reminder", outcome=reminder.outcome,
                patient_id=appt.patient_id if appt else None,
                resource=f"appointment:{reminder.appointment_id}",
            )
            await db.commit()

    async def _send(self, db: AsyncSession, appt: Appointment, start: datetime) -> list[str]:
        user = (await db.exec(
            select(User).where(User.patient_id == appt.patient_id, User.status == UserStatus.active)
        )).first()
        if user is None:
            return []
        prefs = notifications_of(user)["appointment_reminders"]
        cfg = self._settings
        when = when_text(start, user.time_zone or cfg.clinic_timezone)
        link = f"{cfg.base_url}/app/appointments.html"
        channels: list[str] = []
        if prefs.get("email") and user.email:
            first = user.display_name.split(" ")[0] if user.display_name else None
            queue_mail(db, compose(
                KIND, user.email, f"Appointment reminder from {cfg.clinic_name}", cfg.clinic_name, first,
                [f"This is a reminder of your appointment on {when}.",
                 "To see the details, or to cancel or reschedule, sign in to the patient portal."],
                action=("Open your appointments", link),
            ))
            channels.append("email")
        phone = user.phone
        if phone is None:
            patient = await db.get(Patient, appt.patient_id)
            phone = patient.phone if patient else None
        if prefs.get("sms") and phone:
            text = f"{cfg.clinic_name}: reminder of your appointment on {when}. Details: {link}"
            try:
                await self.sms.send(phone, text, kind=KIND)
                channels.append("sms")
            except Exception as exc:  # the email (if any) still goes; the text is not retried
                log.warning("could not send an appointment reminder text: %s", type(exc).__name__)
        return channels
