"""Who hears about a booking change, live: the patient's account, the provider's
account (when linked to the practitioner) and the clinic's staff channel.

Events carry ids only, never the reason or a name, and are published after the
transaction commits (``notify.events.announce``), so nobody is told about a
booking that rolled back.
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import User
from rtc_server.notify.events import announce, user_channel
from rtc_server.records.models import Appointment

#: Staff consoles listen here for new bookings and cancellations.
STAFF_CHANNEL = "staff:appointments"


async def appointment_changed(db: AsyncSession, appt: Appointment, change: str) -> None:
    """Queue ``{"kind": "appointment", "id", "change"}`` for after the commit."""
    event = {"kind": "appointment", "id": appt.id, "change": change}
    users = (
        await db.exec(
            select(User.id).where(
                (col(User.patient_id) == appt.patient_id)
                | (col(User.practitioner_id) == appt.practitioner_id)
            )
        )
    ).all()
    for user_id in users:
        if user_id is not None:
            announce(db, user_channel(user_id), event)
    announce(db, STAFF_CHANNEL, event)
