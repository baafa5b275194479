"""The Help Desk: people send a question or a problem, the clinic's help-desk
staff answer, the requester reads the answer.

Rules:
- Anyone signed in may open a ticket and follow their own tickets; another
  person's ticket answers 404 (the same as an id that does not exist), audited
  as ``denied``.
- Someone who cannot sign in uses the public form: it asks for a name and an
  email address, is limited per IP address (``PUBLIC_LIMIT`` an hour, counted
  in the database with ``auth.throttle`` so every instance shares the count),
  and the reply is emailed to that address. Nothing in the answer tells
  whether the address belongs to an account.
- Front-desk/help-desk staff (and admins) see the queue, read tickets and
  reply; providers and patients are refused (403, audited). Tickets are all
  the help desk sees of a person: their name and contact details, never their
  records.
- A reply is announced to a signed-in requester (``{"kind": "help_ticket",
  "id"}`` on ``user:<id>``) and they get an email that says only that there is
  a reply in the portal. A signed-out requester gets the reply by email (the
  console tells staff so: no health information in it).
- New tickets and requester messages are announced to each help-desk account
  (``{"kind": "help_ticket_queue", "id"}``). Every read and change is audited.

Services commit their own transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import throttle
from rtc_server.auth.actor import Actor, RequestMeta
from rtc_server.auth.models import Role, User, UserStatus
from rtc_server.config import Settings
from rtc_server.db import as_utc
from rtc_server.errors import Conflict, InvalidInput, NotFound, RateLimited
from rtc_server.notify.events import announce, user_channel
from rtc_server.notify.mail import compose
from rtc_server.notify.outbox import queue_mail
from rtc_server.portal.helpdesk.models import HelpTicket, HelpTicketMessage, TicketStatus, TicketTopic
from rtc_server.portal.helpdesk.shapes import (
    MessageIn,
    MessageOut,
    PublicTicketIn,
    PublicTicketOut,
    ReplyIn,
    RequesterOut,
    StaffQueueItem,
    StaffQueueQuery,
    StaffTicketOut,
    TicketIn,
    TicketOut,
    TicketSummaryOut,
)

#: Public tickets per IP address per hour.
PUBLIC_LIMIT = 5
PUBLIC_WINDOW_SECONDS = 3600
HELP_STAFF = (Role.staff, Role.admin)
LIST_LIMIT = 100
QUEUE_EVENT = "help_ticket_queue"
REQUESTER_EVENT = "help_ticket"


def reference(ticket_id: int) -> str:
    return f"HD-{ticket_id:05d}"


async def record(db: AsyncSession, actor: Actor | None, action: str, *, outcome: str = "success",
                 resource: str | None = None, patient_id: int | None = None,
                 meta: RequestMeta | None = None) -> None:
    meta = meta or (actor.meta if actor else None)
    await audit.record(
        db, action=action, outcome=outcome, actor_id=actor.user_id if actor else None,
        actor_role=str(actor.role) if actor else None, patient_id=patient_id, resource=resource,
        request_id=meta.request_id if meta else None, ip=meta.ip if meta else None,
    )


# --- shaping ------------------------------------------------------------------------------

def _new_reply(t: HelpTicket) -> bool:
    reply, seen = as_utc(t.last_staff_reply_at), as_utc(t.requester_seen_at)
    return reply is not None and (seen is None or seen < reply)


def _summary(t: HelpTicket) -> dict[str, object]:
    assert t.id is not None
    return {
        "id": t.id, "reference": reference(t.id), "topic": TicketTopic(t.topic), "subject": t.subject,
        "status": TicketStatus(t.status), "created_at": as_utc(t.created_at),
        "updated_at": as_utc(t.updated_at), "new_reply": _new_reply(t),
    }


async def _messages(db: AsyncSession, ticket_id: int, *, for_staff: bool) -> list[MessageOut]:
    rows = (await db.exec(select(HelpTicketMessage).where(col(HelpTicketMessage.ticket_id) == ticket_id)
                          .order_by(col(HelpTicketMessage.id)))).all()
    authors = await _users(db, {r.author_id for r in rows if r.author_id is not None})
    out = []
    for r in rows:
        author = authors.get(r.author_id) if r.author_id is not None else None
        if r.from_staff:
            name = (author.display_name or author.username) if author else "Help desk"
        elif for_staff:
            name = (author.display_name or author.username) if author else "Requester"
        else:
            name = "You"
        out.append(MessageOut(id=r.id or 0, from_staff=r.from_staff, author=name, body=r.body,
                              created_at=as_utc(r.created_at)))  # type: ignore[arg-type]
    return out


async def _users(db: AsyncSession, ids: set[int]) -> dict[int, User]:
    if not ids:
        return {}
    return {u.id: u for u in (await db.exec(select(User).where(col(User.id).in_(ids)))).all()
            if u.id is not None}


def _requester(t: HelpTicket, user: User | None) -> RequesterOut:
    if t.user_id is None:
        return RequesterOut(kind="email", name=t.contact_name or "", username=None, email=t.contact_email,
                            role=None)
    return RequesterOut(kind="account", name=(user.display_name or user.username) if user else "",
                        username=user.username if user else None, email=user.email if user else None,
                        role=str(user.role) if user else None)


# --- telling people -----------------------------------------------------------------------

async def _announce_to_staff(db: AsyncSession, ticket_id: int) -> None:
    staff = (await db.exec(select(User.id).where(col(User.role).in_(HELP_STAFF),
                                                 col(User.status) == UserStatus.active))).all()
    for user_id in staff:
        if user_id is not None:
            announce(db, user_channel(user_id), {"kind": QUEUE_EVENT, "id": ticket_id})


async def _tell_requester(db: AsyncSession, settings: Settings, t: HelpTicket, reply: str) -> None:
    assert t.id is not None
    ref = reference(t.id)
    if t.user_id is None:
        if t.contact_email:
            phone = getattr(settings, "clinic_phone", None)
            closing = f"To reply, use the help form again and mention {ref}"
            closing += f", or call us at {phone}." if phone else "."
            paragraphs = [f"Here is our reply to your help request {ref}:",
                          *[p.strip() for p in reply.split("\n\n") if p.strip()], closing]
            queue_mail(db, compose("helpdesk_reply", t.contact_email,
                                   f"{settings.clinic_name}: reply to your help request {ref}",
                                   settings.clinic_name, t.contact_name, paragraphs,
                                   action=("Help and contact", f"{settings.base_url}/help.html")))
        return
    announce(db, user_channel(t.user_id), {"kind": REQUESTER_EVENT, "id": t.id})
    user = await db.get(User, t.user_id)
    if user is not None and user.email and user.status == UserStatus.active:
        first = user.display_name.split(" ")[0] if user.display_name else None
        page = "app/help.html" if user.role == Role.patient else "console/index.html"
        queue_mail(db, compose(
            "helpdesk_reply", user.email, f"{settings.clinic_name}: there is a reply to your help request",
            settings.clinic_name, first,
            ["There is a reply to your help desk request in the portal.", "Sign in to read it."],
            action=("Open the portal", f"{settings.base_url}/{page}"),
        ))


# --- the requester's side -----------------------------------------------------------------

async def open_ticket(db: AsyncSession, actor: Actor, body: TicketIn, *, now: datetime) -> TicketOut:
    """Open a ticket as the signed-in person (201)."""
    ticket = HelpTicket(user_id=actor.user_id, patient_id=actor.patient_id, topic=body.topic.value,
                        subject=body.subject, status=TicketStatus.open.value, created_at=now, updated_at=now,
                        requester_seen_at=now)
    db.add(ticket)
    await db.flush()
    assert ticket.id is not None
    db.add(HelpTicketMessage(ticket_id=ticket.id, author_id=actor.user_id, body=body.message, created_at=now))
    await record(db, actor, "helpdesk.open", resource=f"help_ticket:{ticket.id}", patient_id=actor.patient_id)
    await _announce_to_staff(db, ticket.id)
    out = TicketOut(**_summary(ticket), closed_at=None,  # type: ignore[arg-type]
                    messages=await _messages(db, ticket.id, for_staff=False))
    await db.commit()
    return out


async def open_public_ticket(db: AsyncSession, body: PublicTicketIn, *, meta: RequestMeta,
                             settings: Settings, now: datetime) -> PublicTicketOut:
    """A ticket from someone who cannot sign in (rate-limited per IP address)."""
    action = "helpdesk.open_public"
    key = throttle.key_for("helpdesk:ip", meta.ip or "unknown", settings.secret)
    limit = int(getattr(settings, "helpdesk_public_limit", PUBLIC_LIMIT) or PUBLIC_LIMIT)
    try:  # counted first, on its own connection, before this session writes anything
        await throttle.hit(throttle.engine_of(db), key, limit=limit, window_seconds=PUBLIC_WINDOW_SECONDS)
    except RateLimited:
        await record(db, None, action, outcome="rate_limited", meta=meta)
        await db.commit()
        raise RateLimited("You have sent several requests already. Please wait an hour, or call the clinic.",
                          retry_after=PUBLIC_WINDOW_SECONDS) from None
    ticket = HelpTicket(contact_name=body.name, contact_email=body.email, topic=body.topic.value,
                        subject=body.subject, status=TicketStatus.open.value, created_at=now, updated_at=now)
    db.add(ticket)
    await db.flush()
    assert ticket.id is not None
    db.add(HelpTicketMessage(ticket_id=ticket.id, author_id=None, body=body.message, created_at=now))
    await record(db, None, action, resource=f"help_ticket:{ticket.id}", meta=meta)
    await _announce_to_staff(db, ticket.id)
    await db.commit()
    return PublicTicketOut(reference=reference(ticket.id), reply_to=body.email)


async def _own_ticket(db: AsyncSession, actor: Actor, ticket_id: int, action: str) -> HelpTicket:
    ticket = await db.get(HelpTicket, ticket_id)
    if ticket is None or ticket.user_id != actor.user_id:
        raise actor.deny(NotFound(), action=action, resource=f"help_ticket:{ticket_id}",
                         patient_id=actor.patient_id)
    return ticket


async def my_tickets(db: AsyncSession, actor: Actor) -> list[TicketSummaryOut]:
    rows = (await db.exec(select(HelpTicket).where(col(HelpTicket.user_id) == actor.user_id)
                          .order_by(col(HelpTicket.updated_at).desc(), col(HelpTicket.id).desc())
                          .limit(LIST_LIMIT))).all()
    await record(db, actor, "helpdesk.list", patient_id=actor.patient_id)
    out = [TicketSummaryOut(**_summary(t)) for t in rows]  # type: ignore[arg-type]
    await db.commit()
    return out


async def my_ticket(db: AsyncSession, actor: Actor, ticket_id: int, *, now: datetime) -> TicketOut:
    """One of the caller's tickets with its messages; reading it marks the replies as read."""
    action = "helpdesk.read"
    ticket = await _own_ticket(db, actor, ticket_id, action)
    out = TicketOut(**_summary(ticket), closed_at=as_utc(ticket.closed_at),  # type: ignore[arg-type]
                    messages=await _messages(db, ticket_id, for_staff=False))
    ticket.requester_seen_at = now
    db.add(ticket)
    await record(db, actor, action, resource=f"help_ticket:{ticket_id}", patient_id=actor.patient_id)
    await db.commit()
    return out


async def add_message(db: AsyncSession, actor: Actor, ticket_id: int, body: MessageIn, *,
                      now: datetime) -> TicketOut:
    """The requester writes again; the ticket is open (waiting for the clinic) again."""
    action = "helpdesk.message"
    ticket = await _own_ticket(db, actor, ticket_id, action)
    db.add(HelpTicketMessage(ticket_id=ticket_id, author_id=actor.user_id, body=body.message, created_at=now))
    ticket.status, ticket.updated_at, ticket.closed_at, ticket.requester_seen_at = (
        TicketStatus.open.value, now, None, now)
    db.add(ticket)
    await db.flush()
    await record(db, actor, action, resource=f"help_ticket:{ticket_id}", patient_id=actor.patient_id)
    await _announce_to_staff(db, ticket_id)
    out = TicketOut(**_summary(ticket), closed_at=None,  # type: ignore[arg-type]
                    messages=await _messages(db, ticket_id, for_staff=False))
    await db.commit()
    return out


async def unread_replies(db: AsyncSession, user_id: int) -> int:
    """How many of the user's tickets have a reply they have not read (for the dashboard)."""
    rows = (await db.exec(select(HelpTicket).where(col(HelpTicket.user_id) == user_id,
                                                   col(HelpTicket.last_staff_reply_at).is_not(None)))).all()
    return sum(1 for t in rows if _new_reply(t))


# --- the help desk's side -----------------------------------------------------------------

def _require_help_staff(actor: Actor, action: str, resource: str | None = None) -> None:
    actor.require_role(*HELP_STAFF, action=action, resource=resource)


async def queue(db: AsyncSession, actor: Actor, query: StaffQueueQuery) -> list[StaffQueueItem]:
    """Tickets by status, those waiting longest first (closed ones: latest first)."""
    action = "helpdesk.queue"
    _require_help_staff(actor, action)
    stmt = select(HelpTicket)
    if query.status != "all":
        stmt = stmt.where(col(HelpTicket.status) == query.status)
    if query.status == "open":
        stmt = stmt.order_by(col(HelpTicket.updated_at), col(HelpTicket.id))
    else:
        stmt = stmt.order_by(col(HelpTicket.updated_at).desc(), col(HelpTicket.id).desc())
    rows = (await db.exec(stmt.limit(LIST_LIMIT))).all()
    users = await _users(db, {t.user_id for t in rows if t.user_id is not None})
    out = [StaffQueueItem(**_summary(t), requester=_requester(t, users.get(t.user_id or 0)),  # type: ignore[arg-type]
                          last_staff_reply_at=as_utc(t.last_staff_reply_at)) for t in rows]
    await record(db, actor, action, resource=f"status:{query.status}")
    await db.commit()
    return out


async def _staff_ticket(db: AsyncSession, actor: Actor, ticket_id: int, action: str) -> HelpTicket:
    _require_help_staff(actor, action, f"help_ticket:{ticket_id}")
    ticket = await db.get(HelpTicket, ticket_id)
    if ticket is None:
        raise actor.deny(NotFound(), action=action, resource=f"help_ticket:{ticket_id}")
    return ticket


async def _staff_out(db: AsyncSession, ticket: HelpTicket) -> StaffTicketOut:
    assert ticket.id is not None
    user = await db.get(User, ticket.user_id) if ticket.user_id is not None else None
    return StaffTicketOut(**_summary(ticket), closed_at=as_utc(ticket.closed_at),  # type: ignore[arg-type]
                          messages=await _messages(db, ticket.id, for_staff=True),
                          requester=_requester(ticket, user))


async def read_ticket(db: AsyncSession, actor: Actor, ticket_id: int) -> StaffTicketOut:
    action = "helpdesk.staff_read"
    ticket = await _staff_ticket(db, actor, ticket_id, action)
    out = await _staff_out(db, ticket)
    await record(db, actor, action, resource=f"help_ticket:{ticket_id}", patient_id=ticket.patient_id)
    await db.commit()
    return out


async def reply(db: AsyncSession, actor: Actor, ticket_id: int, body: ReplyIn, *, settings: Settings,
                now: datetime) -> StaffTicketOut:
    """Answer a ticket (and optionally close it); the requester is told (see the module docstring)."""
    action = "helpdesk.reply"
    ticket = await _staff_ticket(db, actor, ticket_id, action)
    if ticket.user_id is None and not body.no_health_data:
        # Anyone can type any name and their own address on the public form.
        raise InvalidInput("no_health_data", "This reply is emailed to an address nobody verified: "
                           "confirm it contains no health information, or call the person back.")
    db.add(HelpTicketMessage(ticket_id=ticket_id, author_id=actor.user_id, from_staff=True, body=body.message,
                             created_at=now))
    ticket.status = (TicketStatus.closed if body.close else TicketStatus.answered).value
    ticket.closed_at = now if body.close else None
    ticket.updated_at = ticket.last_staff_reply_at = now
    db.add(ticket)
    await db.flush()
    await record(db, actor, action, resource=f"help_ticket:{ticket_id}", patient_id=ticket.patient_id)
    await _tell_requester(db, settings, ticket, body.message)
    await _announce_to_staff(db, ticket_id)
    out = await _staff_out(db, ticket)
    await db.commit()
    return out


async def close(db: AsyncSession, actor: Actor, ticket_id: int, *, now: datetime) -> StaffTicketOut:
    """Close a ticket without a reply (nothing to answer, or answered by phone)."""
    action = "helpdesk.close"
    ticket = await _staff_ticket(db, actor, ticket_id, action)
    if ticket.status == TicketStatus.closed:
        raise Conflict("This ticket is already closed.", code="already_closed")
    ticket.status, ticket.closed_at, ticket.updated_at = TicketStatus.closed.value, now, now
    db.add(ticket)
    await db.flush()
    await record(db, actor, action, resource=f"help_ticket:{ticket_id}", patient_id=ticket.patient_id)
    await _announce_to_staff(db, ticket_id)
    if ticket.user_id is not None:
        announce(db, user_channel(ticket.user_id), {"kind": REQUESTER_EVENT, "id": ticket_id})
    out = await _staff_out(db, ticket)
    await db.commit()
    return out


async def open_count(db: AsyncSession) -> int:
    """Tickets waiting for the clinic (for the console's navigation)."""
    query = select(func.count()).select_from(HelpTicket).where(
        col(HelpTicket.status) == TicketStatus.open.value)
    return int((await db.exec(query)).one())  # type: ignore[call-overload]
