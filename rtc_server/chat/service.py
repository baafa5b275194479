"""Secure messaging: the rules. Plain async functions taking a session and
the acting person; transports (``routes``, ``ws``) only parse and shape.

What every function keeps:
- Access is the care-team rule (``chat.access``). Someone else's conversation
  answers 404, exactly as one that does not exist, and the refusal is audited
  (``denied``).
- Auditing is per conversation, not per message (architecture review F8):
  messages are append-only records themselves (UNIQUE(sender_id, client_id)),
  so the audit log records who *opened* a conversation (``chat.open``: every
  read of its messages over HTTP, every socket ``resume``), started, routed,
  closed, reopened or archived it. Patients' opening is audited too.
- A message is stored before it is acknowledged, once: ``post_message`` hands
  it to the instance's group-commit writer and returns the stored id and
  sequence; a resend with the same ``client_id`` returns the same id and seq.
- Announcements go out after commit, ids and sequences only (never text).
- Message text is never logged, and is never interpreted: it is text.
- Patients cannot delete messages; they archive a conversation (per person).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, User
from rtc_server.chat import queries
from rtc_server.chat.access import (
    ConversationAccess,
    Who,
    is_open,
    may_access,
    require_access,
    who_is,
)
from rtc_server.chat.filelinks import attach, link
from rtc_server.chat.files import ACCEPTED_TYPES
from rtc_server.chat.models import Category, Conversation, Member, Message, Status
from rtc_server.chat.relay import KIND_DELIVERED, KIND_READ, KIND_TYPING
from rtc_server.chat.runtime import KIND_UNREAD, ChatRuntime
from rtc_server.chat.shapes import (
    MAX_BODY_CHARS,
    CategoryOut,
    ComposeInfoOut,
    ConversationList,
    ConversationOut,
    MessagesOut,
    ReadOut,
    SentOut,
    StartedOut,
    StartIn,
    UnreadOut,
)
from rtc_server.chat.writer import Draft, Stored
from rtc_server.errors import Conflict, InvalidInput, NotFound, RateLimited
from rtc_server.notify.events import announce, conversation_channel, user_channel
from rtc_server.portal.appointments.events import STAFF_CHANNEL
from rtc_server.portal.refills.models import RefillRequest
from rtc_server.records.models import Patient

KIND_CONVERSATION = "chat.conversation"

_MB = Member.__table__.c  # type: ignore[attr-defined]
_MSG = Message.__table__.c  # type: ignore[attr-defined]
_C = Conversation.__table__.c  # type: ignore[attr-defined]
_U = User.__table__.c  # type: ignore[attr-defined]

CATEGORIES = [
    CategoryOut(value=Category.question, label="Medical question",
                hint="A non-urgent question for your care team. Not for emergencies."),
    CategoryOut(value=Category.refill, label="Prescription refill request",
                hint="Name the medication and the pharmacy."),
    CategoryOut(value=Category.appointment, label="Appointment question",
                hint="About an upcoming or past visit."),
    CategoryOut(value=Category.billing, label="Billing",
                hint="Statements, payments and insurance."),
    CategoryOut(value=Category.other, label="Other", hint="Anything else."),
]


def compose_info(chat: ChatRuntime) -> ComposeInfoOut:
    limits = chat.limits
    return ComposeInfoOut(
        categories=CATEGORIES, reply_time=f"Your care team usually replies {limits.reply_time}.",
        emergency_notice=(f"Messaging is not for emergencies. If you have a medical emergency, "
                          f"call {limits.emergency_number} or go to the nearest emergency room."),
        emergency_number=limits.emergency_number, max_chars=MAX_BODY_CHARS,
        attachment_max_bytes=chat.deps.settings.chat_attachment_max_bytes,
        attachment_types=list(ACCEPTED_TYPES),
    )


async def audit_conversation(db: AsyncSession, actor: Actor, action: str, conv: ConversationAccess | int,
                 patient_id: int | None = None, detail: str = "") -> None:
    cid = conv if isinstance(conv, int) else conv.id
    await audit.record(
        db, action=action, actor_id=actor.user_id, actor_role=str(actor.role),
        patient_id=patient_id if isinstance(conv, int) else conv.patient_id,
        resource=f"conversation:{cid}{detail}", request_id=actor.meta.request_id, ip=actor.meta.ip,
    )


async def ensure_member(db: AsyncSession, conversation_id: int, user_id: int, now: datetime) -> None:
    """A member row for this person (read state, archive); nothing if there is one."""
    dialect = db.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await db.exec(
        make(Member.__table__).values(  # type: ignore[arg-type]
            conversation_id=conversation_id, user_id=user_id, last_read_seq=0, last_delivered_seq=0,
            archived=False, joined_at=now,
        ).on_conflict_do_nothing(index_elements=["conversation_id", "user_id"]))


async def member_ids(db: AsyncSession, conversation_id: int) -> list[int]:
    return list((await db.exec(
        select(_MB.user_id).where(_MB.conversation_id == conversation_id))).scalars())


def _announce_to(db: AsyncSession, user_ids: list[int], event: dict[str, object],
                 *, skip: int | None = None) -> None:
    for uid in user_ids:
        if uid != skip:
            announce(db, user_channel(uid), event)


# --- starting -----------------------------------------------------------------------

async def start_conversation(
    db: AsyncSession, chat: ChatRuntime, actor: Actor, data: StartIn, *, now: datetime,
) -> tuple[StartedOut, bool]:
    """Start a conversation with its first message (stored and numbered 1 in one
    transaction). Patients start their own; providers and staff name the patient.
    Idempotent on ``client_id``: a retry returns the conversation the first try
    made (second value False) instead of starting another."""
    who = await who_is(db, actor)
    earlier = await _earlier_start(db, who, data.client_id)
    if earlier is not None:
        return earlier, False
    if actor.role == Role.patient:
        actor.require(actor.patient_id is not None and data.patient_id in (None, actor.patient_id),
                      action="chat.start", error=NotFound())
        patient_id = actor.patient_id
    else:
        actor.require_role(Role.provider, Role.staff, action="chat.start")
        if data.patient_id is None:
            raise InvalidInput("patient_id", "Choose the patient this message is for.")
        patient_id = data.patient_id
    patient = await db.get(Patient, patient_id)
    if patient is None:
        raise NotFound()
    if not chat.allow_message(actor.user_id):
        raise RateLimited("You are sending messages too quickly; wait a moment.", retry_after=2)
    refill_id = await _carried_refill(db, actor, data, patient.id)  # type: ignore[arg-type]
    routed = who.practitioner_id if who.role == Role.provider else patient.primary_practitioner_id
    if refill_id is not None:
        routed = (await db.get(RefillRequest, refill_id)).practitioner_id or routed  # type: ignore[union-attr]
    # The one starting it must be able to use it once routed (a refill request
    # routes to its prescriber): otherwise nothing is stored and it looks absent.
    planned = ConversationAccess(0, patient.id, routed, patient.primary_practitioner_id,  # type: ignore[arg-type]
                                 Status.open)
    resource = f"refill:{refill_id}" if refill_id is not None else f"patient:{patient.id}"
    actor.require(may_access(who, planned), action="chat.start", resource=resource,
                  patient_id=patient.id, error=NotFound())
    conv = Conversation(
        refill_request_id=refill_id,
        patient_id=patient.id, provider_id=patient.primary_practitioner_id, routed_to_id=routed,  # type: ignore[arg-type]
        category=data.category, subject=data.subject, status=Status.open, created_by=actor.user_id,
        created_at=now, last_seq=1, last_message_at=now,
    )
    db.add(conv)
    try:
        await db.flush()
    except IntegrityError:  # another conversation took the refill request first
        await db.rollback()
        raise Conflict("This refill request already has its conversation.",
                       code="refill_has_conversation") from None
    assert conv.id is not None
    message = Message(conversation_id=conv.id, seq=1, sender_id=actor.user_id,
                      client_id=data.client_id, body=data.body, created_at=now,
                      attachments=await attach(db, actor.user_id, data.attachments))
    db.add(message)
    try:
        await db.flush()
        if data.attachments:
            assert message.id is not None
            await link(db, actor.user_id, data.attachments, conversation_id=conv.id, message_id=message.id)
    except IntegrityError:  # the same client_id raced in on another request
        await db.rollback()
        earlier = await _earlier_start(db, who, data.client_id)
        if earlier is None:
            raise Conflict("This client_id was already used.", code="client_id_reused") from None
        return earlier, False
    members = {actor.user_id}
    patient_user = (await db.exec(
        select(_U.id).where(_U.patient_id == patient.id))).scalar_one_or_none()
    if patient_user is not None:
        members.add(patient_user)
    if routed is not None:
        members.update((await db.exec(
            select(_U.id).where(_U.practitioner_id == routed, _U.role == Role.provider))).scalars())
    for uid in members:
        await ensure_member(db, conv.id, uid, now)
    await audit_conversation(db, actor, "chat.start", conv.id, patient.id)
    _announce_to(db, sorted(members), {"kind": KIND_CONVERSATION, "conversation_id": conv.id})
    # The clinic's inboxes (staff see every conversation) show it at once.
    announce(db, STAFF_CHANNEL, {"kind": KIND_CONVERSATION, "conversation_id": conv.id})
    _announce_to(db, sorted(members), {"kind": KIND_UNREAD, "conversation_id": conv.id, "seq": 1},
                 skip=actor.user_id)
    detail = await queries.detail_of(db, who, conv.id)  # before commit: a failure keeps nothing
    await db.commit()
    for uid in members:
        chat.remember_member(conv.id, uid)
    chat.digests.offer(members - {actor.user_id}, now)
    assert message.id is not None
    return StartedOut(conversation=detail, message=SentOut(
        id=message.id, conversation_id=conv.id, seq=1, client_id=data.client_id, sent_at=now)), True


async def _carried_refill(db: AsyncSession, actor: Actor, data: StartIn, patient_id: int) -> int | None:
    """The refill request a new ``refill`` conversation carries: the patient's
    own (someone else's looks absent: 404, audited), not already carried by
    another conversation (409 ``refill_has_conversation``)."""
    if data.refill_request_id is None:
        return None
    if data.category != Category.refill:
        raise InvalidInput("category", "A refill request goes in a prescription refill conversation.")
    row = await db.get(RefillRequest, data.refill_request_id)
    actor.require(row is not None and row.patient_id == patient_id, action="chat.start",
                  resource=f"refill:{data.refill_request_id}", patient_id=patient_id, error=NotFound())
    taken = (await db.exec(select(_C.id).where(_C.refill_request_id == data.refill_request_id))).first()
    if taken is not None:
        raise Conflict("This refill request already has its conversation.", code="refill_has_conversation")
    return data.refill_request_id


async def _earlier_start(db: AsyncSession, who: Who, client_id: str) -> StartedOut | None:
    row = (await db.exec(
        select(_MSG.id, _MSG.conversation_id, _MSG.seq, _MSG.created_at)
        .where(_MSG.sender_id == who.user_id, _MSG.client_id == client_id))).first()
    if row is None:
        return None
    detail = await queries.detail_of(db, who, row.conversation_id)
    return StartedOut(conversation=detail, message=SentOut(
        id=row.id, conversation_id=row.conversation_id, seq=row.seq, client_id=client_id,
        sent_at=row.created_at))


# --- reading ---------------------------------------------------------------------------

async def list_conversations(
    db: AsyncSession, actor: Actor, *, archived: bool = False, status: Status | None = None,
    limit: int = 50, offset: int = 0,
) -> ConversationList:
    """The inbox, newest activity first, with unread counts. Admins have none."""
    actor.require_role(Role.patient, Role.provider, Role.staff, action="chat.list")
    who = await who_is(db, actor)
    items = await queries.list_summaries(db, who, archived=archived, status=status,
                                         limit=limit, offset=offset)
    return ConversationList(conversations=items, unread_total=(await queries.unread_counts(db, who)).total)


async def unread(db: AsyncSession, actor: Actor) -> UnreadOut:
    actor.require_role(Role.patient, Role.provider, Role.staff, action="chat.unread")
    return await queries.unread_counts(db, await who_is(db, actor))


async def open_conversation(
    db: AsyncSession, chat: ChatRuntime | None, actor: Actor, conversation_id: int, *, now: datetime,
    via: str = "",
) -> tuple[Who, ConversationAccess]:
    """Check access, audit the opening (``chat.open``) and make the reader a
    member (read state); commits. For every read of a conversation's messages."""
    who = await who_is(db, actor)
    conv = await require_access(db, actor, who, conversation_id, action="chat.open")
    await ensure_member(db, conv.id, actor.user_id, now)
    await audit_conversation(db, actor, "chat.open", conv, detail=via)
    await db.commit()
    if chat is not None:
        chat.remember_member(conv.id, actor.user_id)
    return who, conv


async def get_conversation(
    db: AsyncSession, chat: ChatRuntime, actor: Actor, conversation_id: int, *, now: datetime,
) -> ConversationOut:
    who, conv = await open_conversation(db, chat, actor, conversation_id, now=now)
    return await queries.detail_of(db, who, conv.id)


async def list_messages(
    db: AsyncSession, chat: ChatRuntime, actor: Actor, conversation_id: int, *, after: int | None,
    before: int | None, limit: int, now: datetime,
) -> MessagesOut:
    _, conv = await open_conversation(db, chat, actor, conversation_id, now=now, via="/messages")
    return await queries.message_page(db, conv.id, after=after, before=before, limit=limit)


# --- sending ---------------------------------------------------------------------------

async def check_send(db: AsyncSession, chat: ChatRuntime, actor: Actor, conversation_id: int, *,
                     now: datetime) -> tuple[Who, ConversationAccess]:
    """May ``actor`` write here now? (Access, open, a member row.) Commits."""
    who = await who_is(db, actor)
    conv = await require_access(db, actor, who, conversation_id, action="chat.send")
    if not is_open(conv):
        raise Conflict("This conversation is closed; start a new message instead.",
                       code="conversation_closed")
    if (conv.id, actor.user_id) not in chat.members_known:
        await ensure_member(db, conv.id, actor.user_id, now)
        await db.commit()
        chat.remember_member(conv.id, actor.user_id)
    return who, conv


def submit_message(chat: ChatRuntime, actor: Actor, conversation_id: int, *, body: str,
                   client_id: str, origin: object | None = None) -> object:
    """Hand a message whose sender may write here to the writer; the future of
    its ``Stored``. Raises RateLimited past the person's rate (nothing stored)."""
    if not chat.allow_message(actor.user_id):
        raise RateLimited("You are sending messages too quickly; wait a moment.", retry_after=1)
    return chat.writer.submit(Draft(conversation_id, actor.user_id, client_id, body,
                                    sender_role=str(actor.role), origin=origin))


async def post_message(
    db: AsyncSession, chat: ChatRuntime, actor: Actor, conversation_id: int, *, body: str,
    client_id: str, now: datetime,
) -> Stored:
    """Store a message (group commit) and return it once it is committed. A
    resend with the same ``client_id`` returns the first one (``created`` False)."""
    await check_send(db, chat, actor, conversation_id, now=now)
    await db.commit()  # give the connection back while the writer stores the message
    return await submit_message(chat, actor, conversation_id, body=body, client_id=client_id)  # type: ignore[misc]


def sent_out(stored: Stored) -> SentOut:
    return SentOut(id=stored.id, conversation_id=stored.conversation_id, seq=stored.seq,
                   client_id=stored.client_id, sent_at=stored.sent_at)


# --- receipts, typing, archive ---------------------------------------------------------

async def mark_read(
    db: AsyncSession, actor: Actor, conversation_id: int, seq: int, *, now: datetime,
    delivered_only: bool = False,
) -> ReadOut:
    """Everything up to ``seq`` has been read (or, ``delivered_only``, has reached
    the device). Receipts only move forward; the others see them live."""
    who = await who_is(db, actor)
    conv = await require_access(db, actor, who, conversation_id, action="chat.read")
    last = (await db.exec(select(_C.last_seq).where(_C.id == conv.id))).scalar_one()
    seq = min(seq, last)
    await ensure_member(db, conv.id, actor.user_id, now)
    mine = and_(_MB.conversation_id == conv.id, _MB.user_id == actor.user_id)
    moved = (await db.exec(update(Member.__table__).where(  # type: ignore[arg-type]
        mine, _MB.last_delivered_seq < seq).values(last_delivered_seq=seq))).rowcount
    if not delivered_only:
        moved_read = (await db.exec(update(Member.__table__).where(  # type: ignore[arg-type]
            mine, _MB.last_read_seq < seq).values(last_read_seq=seq))).rowcount
        if moved_read:
            event = {"kind": KIND_READ, "conversation_id": conv.id, "user_id": actor.user_id, "seq": seq}
            announce(db, conversation_channel(conv.id), event)
            announce(db, user_channel(actor.user_id), event)  # the reader's other pages: badges
    elif moved:
        announce(db, conversation_channel(conv.id), {
            "kind": KIND_DELIVERED, "conversation_id": conv.id, "user_id": actor.user_id, "seq": seq})
    await db.commit()
    current = (await db.exec(select(_MB.last_read_seq).where(mine))).scalar_one()
    return ReadOut(conversation_id=conv.id, last_read_seq=current)


async def typing(chat: ChatRuntime, actor: Actor, conversation_id: int) -> None:
    """Tell the conversation's open pages that ``actor`` is typing (not stored).
    The caller has checked access (the socket follows the conversation)."""
    await chat.publish([(conversation_channel(conversation_id), {
        "kind": KIND_TYPING, "conversation_id": conversation_id, "user_id": actor.user_id})])


async def set_archived(
    db: AsyncSession, actor: Actor, conversation_id: int, archived: bool, *, now: datetime,
) -> ConversationOut:
    """Archive (or bring back) a conversation for this person only. Messages are
    never deleted; an archived conversation returns to the inbox while it has
    unread messages."""
    who = await who_is(db, actor)
    conv = await require_access(db, actor, who, conversation_id, action="chat.archive")
    await ensure_member(db, conv.id, actor.user_id, now)
    await db.exec(update(Member.__table__).where(  # type: ignore[arg-type]
        _MB.conversation_id == conv.id, _MB.user_id == actor.user_id).values(archived=archived))
    await audit_conversation(db, actor, "chat.archive" if archived else "chat.unarchive", conv)
    announce(db, user_channel(actor.user_id), {"kind": KIND_CONVERSATION, "conversation_id": conv.id})
    await db.commit()
    return await queries.detail_of(db, who, conv.id)

