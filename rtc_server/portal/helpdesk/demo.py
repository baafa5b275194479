"""Help-desk tickets for the demo clinic: one the help desk has answered (its
requester reads the reply in the portal) and one from someone who could not sign
in, waiting in the help desk's queue.

``rtc-server demo`` calls, after creating the accounts::

    async with factory() as session:
        await seed_demo_tickets(session)
        await session.commit()

Running it again adds nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import Role, User, UserStatus
from rtc_server.db import utcnow
from rtc_server.portal.helpdesk.models import HelpTicket, HelpTicketMessage, TicketStatus, TicketTopic


async def _first(db: AsyncSession, role: Role) -> User | None:
    return (await db.exec(select(User).where(col(User.role) == role, col(User.status) == UserStatus.active)
                          .order_by(col(User.id)))).first()


async def seed_demo_tickets(db: AsyncSession, now: datetime | None = None) -> int:
    """Add the demo tickets (in the caller's transaction); how many were added."""
    now = now or utcnow()
    if (await db.exec(select(HelpTicket.id))).first() is not None:
        return 0
    staff = await _first(db, Role.staff)
    patient = await _first(db, Role.patient)
    added = 0
    if patient is not None:
        asked, answered = now - timedelta(days=1, hours=2), now - timedelta(days=1)
        ticket = HelpTicket(user_id=patient.id, patient_id=patient.patient_id,
                            topic=TicketTopic.technical.value, subject="Can I use the portal on my phone?",
                            status=TicketStatus.answered.value,
                            created_at=asked, updated_at=answered, last_staff_reply_at=answered)
        db.add(ticket)
        await db.flush()
        assert ticket.id is not None
        db.add(HelpTicketMessage(ticket_id=ticket.id, author_id=patient.id, created_at=asked,
                                 body="I would like to check my appointments on my phone. Is there an app?"))
        db.add(HelpTicketMessage(
            ticket_id=ticket.id, author_id=staff.id if staff else None, from_staff=True, created_at=answered,
            body="There is no app to install: the portal works in your phone's browser. Open the log-in page "
                 "and add it to your home screen to find it quickly."))
        added += 1
    waiting = now - timedelta(hours=2)
    ticket = HelpTicket(contact_name="Walter Kowalski", contact_email="walter.kowalski@example.net",
                        topic=TicketTopic.login.value, subject="Locked out of my account",
                        status=TicketStatus.open.value, created_at=waiting, updated_at=waiting)
    db.add(ticket)
    await db.flush()
    assert ticket.id is not None
    db.add(HelpTicketMessage(ticket_id=ticket.id, created_at=waiting,
                             body="I typed my password wrong a few times and now the portal says my "
                                  "account is locked. How do I get back in?"))
    return added + 1
