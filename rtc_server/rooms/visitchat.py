"""Chat inside a video visit, on the secure-messaging machinery.

A visit's chat is one ``chat_conversation`` of category ``visit`` with
``visit_id`` set (made with the first message; UNIQUE(visit_id) makes two
first messages share it). Its messages go through the chat group-commit
writer like any other: stored before they are acknowledged, numbered 1, 2, 3 …
gap-free in commit order, and a resend with the same ``client_id`` is stored
once (UNIQUE(sender_id, client_id)) and answered with the first id and seq.
They stay with the visit's record after it ends.

Who reaches it (``chat.access`` and ``chat.queries`` keep it out of every
Messaging inbox and conversation route; only this module reads it):

- during the visit: its provider, and participants while admitted (the
  patient, guests); someone waiting is refused (409 ``not_admitted``, audited);
- a guest reads only what was said after they were admitted: the chat's last
  sequence at admission is kept on their participant row (``chat_from_seq``),
  and their reads start after it (sequence, not time: the writer numbers in
  commit order);
- after the visit: the patient and the provider (it is part of the record).

A stored message is announced on ``room:<visit>`` as ``visit.chat {visit,
seq}`` (no text); pages watching the visit read what is new with
``GET /visits/{id}/messages?after=<seq>``. Text is never logged or
interpreted; pages insert it as text. Each read is audited
(``visit.chat_read``), as messaging audits each read of a conversation;
sending is not audited per message (the message is its own record).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.chat.models import Category, Conversation, Message, Status
from rtc_server.chat.runtime import ChatRuntime
from rtc_server.chat.writer import Draft, Stored
from rtc_server.errors import Conflict, RateLimited
from rtc_server.notify.events import room_channel
from rtc_server.rooms.access import participant_names, shown_to, visit_role
from rtc_server.rooms.models import Participant, ParticipantRole, ParticipantState, Visit, VisitStatus
from rtc_server.rooms.shapes import VisitMessageOut, VisitMessagesOut, VisitSentOut

KIND_CHAT = "visit.chat"
#: Messages per read at most (a visit's chat is short; the page reads on from the last).
PAGE = 200


def _not_admitted() -> Conflict:
    return Conflict("The chat opens when you are admitted to the visit.", code="not_admitted")


async def _allowed(db: AsyncSession, actor: Actor, visit_id: int, action: str, *,
                   writing: bool) -> tuple[Visit, str, int]:
    """The visit, the caller's role, and the sequence after which they may read."""
    visit, role = await visit_role(db, actor, visit_id, action)
    read_from = 0
    if role == ParticipantRole.provider:
        allowed = True
    elif visit.status == VisitStatus.ended:
        allowed = not writing and role == ParticipantRole.patient
    else:
        mine = (await db.exec(select(Participant.state, Participant.chat_from_seq).where(
            Participant.visit_id == visit.id, Participant.user_id == actor.user_id))).first()
        allowed = mine is not None and mine[0] == ParticipantState.admitted
        if role == ParticipantRole.guest:
            read_from = (mine[1] if mine is not None else None) or 0
    if writing and visit.status == VisitStatus.ended:
        actor.require(False, action=action, resource=f"visit:{visit_id}",
                      error=Conflict("This visit has ended.", code="visit_ended"))
    actor.require(allowed, action=action, resource=f"visit:{visit_id}", error=_not_admitted())
    return visit, role, read_from


async def last_seq(db: AsyncSession, visit_id: int) -> int:
    """The visit chat's last sequence number (0 before its first message)."""
    found = (await db.exec(select(Conversation.last_seq).where(Conversation.visit_id == visit_id))).first()
    return int(found or 0)


async def _conversation_id(db: AsyncSession, visit: Visit, actor: Actor, now: datetime) -> int:
    """The visit's chat conversation, made on first use."""
    found = (await db.exec(select(Conversation.id).where(Conversation.visit_id == visit.id))).first()
    if found is not None:
        return found
    conv = Conversation(patient_id=visit.patient_id, provider_id=visit.practitioner_id,
                        category=Category.visit, subject="Video visit", status=Status.open,
                        created_by=actor.user_id, created_at=now, visit_id=visit.id)
    db.add(conv)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:  # the other side's first message made it a moment ago
        return (await db.exec(select(Conversation.id).where(Conversation.visit_id == visit.id))).one()
    assert conv.id is not None
    return conv.id


async def post(db: AsyncSession, chat: ChatRuntime, actor: Actor, visit_id: int, *, body: str,
               client_id: str, now: datetime) -> VisitSentOut:
    """Store a chat line (group commit) and announce it on the visit's room; a
    resend with the same ``client_id`` answers the first one's id and seq."""
    visit, _, _ = await _allowed(db, actor, visit_id, "visit.chat_send", writing=True)
    conversation_id = await _conversation_id(db, visit, actor, now)
    await db.commit()  # give the connection back while the writer stores the message
    if not chat.allow_message(actor.user_id):
        raise RateLimited("You are sending messages too quickly; wait a moment.", retry_after=1)
    stored: Stored = await chat.writer.submit(Draft(conversation_id, actor.user_id, client_id, body,
                                                    sender_role=str(actor.role)))
    await chat.publish([(room_channel(visit_id), {"kind": KIND_CHAT, "visit": visit_id,
                                                  "seq": stored.seq})])
    return VisitSentOut(id=stored.id, seq=stored.seq, client_id=stored.client_id,
                        sent_at=stored.sent_at, created=stored.created)


async def messages(db: AsyncSession, actor: Actor, visit_id: int, *, after: int) -> VisitMessagesOut:
    """The visit's chat after sequence ``after``, oldest first (at most ``PAGE``)."""
    visit, role, read_from = await _allowed(db, actor, visit_id, "visit.chat_read", writing=False)
    after = max(after, read_from)
    conv = (await db.exec(select(Conversation.id, Conversation.last_seq)
                          .where(Conversation.visit_id == visit.id))).first()
    out: list[VisitMessageOut] = []
    last_seq = 0
    if conv is not None:
        conversation_id, last_seq = conv
        rows = (await db.exec(select(Message).where(
            Message.conversation_id == conversation_id, col(Message.seq) > after)
            .order_by(col(Message.seq)).limit(PAGE))).all()
        people = (await db.exec(select(Participant).where(Participant.visit_id == visit.id))).all()
        names = await participant_names(db, visit, people)
        by_user = {p.user_id: (p.role, shown_to(role, p.role, names[p.id or 0])) for p in people}
        for m in rows:
            sender_role, name = by_user.get(m.sender_id, ("", "Someone"))
            out.append(VisitMessageOut(
                id=m.id or 0, seq=m.seq, sender=name, role=sender_role,
                mine=m.sender_id == actor.user_id, body=m.body, client_id=m.client_id,
                sent_at=m.created_at or visit.created_at,  # type: ignore[arg-type]
            ))
    await audit.record(
        db, action="visit.chat_read", outcome="success", actor_id=actor.user_id,
        actor_role=str(actor.role), patient_id=visit.patient_id, resource=f"visit:{visit.id}",
        request_id=actor.meta.request_id, ip=actor.meta.ip,
    )
    await db.commit()
    return VisitMessagesOut(messages=out, last_seq=last_seq)


async def message_counts(db: AsyncSession, visit_ids: list[int]) -> dict[int, int]:
    """Visit id → how many chat messages it holds (the patient's past visits)."""
    if not visit_ids:
        return {}
    rows = (await db.exec(
        select(Conversation.visit_id, func.count(col(Message.id)))
        .join(Message, col(Message.conversation_id) == col(Conversation.id))
        .where(col(Conversation.visit_id).in_(visit_ids)).group_by(col(Conversation.visit_id))
    )).all()
    return {vid: int(n) for vid, n in rows if vid is not None}
