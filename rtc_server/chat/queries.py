"""Reading conversations: the inbox with unread counts, one conversation with
its members' receipts, and pages of messages. No permission decisions here
beyond the care-team filter (``visible_to``); callers check and audit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.orm import aliased
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import Role, User
from rtc_server.chat.access import Who
from rtc_server.chat.models import Conversation, Member, Message
from rtc_server.chat.shapes import (
    AttachmentOut,
    ConversationOut,
    ConversationSummary,
    MemberOut,
    MessageOut,
    MessagesOut,
    PersonRef,
    UnreadOut,
)
from rtc_server.portal.refills.models import RefillRequest
from rtc_server.portal.refills.shapes import RefillOut
from rtc_server.portal.refills.views import refills_out
from rtc_server.records.models import Patient, Practitioner

_C = Conversation.__table__.c  # type: ignore[attr-defined]
_MB = Member.__table__.c  # type: ignore[attr-defined]
_MSG = Message.__table__.c  # type: ignore[attr-defined]
_P = Patient.__table__.c  # type: ignore[attr-defined]
_U = User.__table__.c  # type: ignore[attr-defined]


def visible_to(who: Who) -> ColumnElement[bool]:
    """The care-team rule (``access.may_access``) as a filter on conversations."""
    return and_(_C.visit_id.is_(None), _visible_to(who))  # a visit's chat is in no inbox


def _visible_to(who: Who) -> ColumnElement[bool]:
    if who.role == Role.patient:
        return _C.patient_id == who.patient_id if who.patient_id is not None else false()
    if who.role == Role.staff:
        return true()
    if who.role == Role.provider and who.practitioner_id is not None:
        panel = select(_P.id).where(_P.primary_practitioner_id == who.practitioner_id)
        return or_(_C.routed_to_id == who.practitioner_id, _C.patient_id.in_(panel))
    return false()


def _unread_of(user_id: int) -> Any:
    """Messages from others after this person's last read one, per conversation row."""
    return (
        select(func.count()).select_from(Message.__table__)  # type: ignore[arg-type]
        .where(_MSG.conversation_id == _C.id, _MSG.seq > func.coalesce(_MB.last_read_seq, 0),
               _MSG.sender_id != user_id)
        .scalar_subquery()
    )


def practitioner_name(row: Any) -> str:
    if row is None:
        return ""
    parts = [row.prefix, row.given_name, row.family_name]
    name = " ".join(p for p in parts if p)
    return f"{name}, {row.suffix}" if row.suffix else name


def _summary_query(who: Who) -> Any:
    routed = aliased(Practitioner)
    unread = _unread_of(who.user_id).label("unread")
    return (
        select(Conversation.__table__, _P.given_name.label("p_given"),  # type: ignore[arg-type]
               _P.family_name.label("p_family"), routed.prefix.label("r_prefix"),
               routed.given_name.label("r_given"), routed.family_name.label("r_family"),
               routed.suffix.label("r_suffix"), func.coalesce(_MB.archived, False).label("is_archived"),
               unread)
        .join(Patient.__table__, _P.id == _C.patient_id)  # type: ignore[arg-type]
        .outerjoin(routed, routed.id == _C.routed_to_id)
        .outerjoin(Member.__table__, and_(_MB.conversation_id == _C.id,  # type: ignore[arg-type]
                                          _MB.user_id == who.user_id))
        .where(visible_to(who)), unread
    )


def _summary(row: Any) -> ConversationSummary:
    provider = None
    if row.routed_to_id is not None:
        name = " ".join(p for p in (row.r_prefix, row.r_given, row.r_family) if p)
        provider = PersonRef(id=row.routed_to_id,
                             name=f"{name}, {row.r_suffix}" if row.r_suffix else name)
    return ConversationSummary(
        id=row.id, category=row.category, subject=row.subject, status=row.status,
        patient=PersonRef(id=row.patient_id, name=f"{row.p_given} {row.p_family}".strip()),
        provider=provider, last_seq=row.last_seq, last_message_at=row.last_message_at,
        unread=row.unread, archived=bool(row.is_archived),
    )


async def list_summaries(
    db: AsyncSession, who: Who, *, archived: bool, status: str | None, limit: int, offset: int,
) -> list[ConversationSummary]:
    query, unread = _summary_query(who)
    shelved = func.coalesce(_MB.archived, False)
    # An archived conversation comes back to the inbox while it has unread messages.
    if archived:
        query = query.where(shelved == true(), unread == 0)
    else:
        query = query.where(or_(shelved == false(), unread > 0))
    if status is not None:
        query = query.where(_C.status == status)
    query = (query.order_by(func.coalesce(_C.last_message_at, _C.created_at).desc(), _C.id.desc())
             .limit(limit).offset(offset))
    return [_summary(row) for row in (await db.exec(query)).all()]


async def unread_counts(db: AsyncSession, who: Who) -> UnreadOut:
    """Unread messages over the conversations this person belongs to (has a
    member row in) and may still see: the tab badge and the dashboard."""
    row = (await db.exec(
        select(func.count(), func.count(func.distinct(_MSG.conversation_id)))
        .select_from(Message.__table__)  # type: ignore[arg-type]
        .join(Member.__table__, and_(_MB.conversation_id == _MSG.conversation_id,  # type: ignore[arg-type]
                                     _MB.user_id == who.user_id))
        .join(Conversation.__table__, _C.id == _MSG.conversation_id)  # type: ignore[arg-type]
        .where(_MSG.seq > _MB.last_read_seq, _MSG.sender_id != who.user_id, visible_to(who))
    )).one()
    return UnreadOut(total=row[0], conversations=row[1])


async def summary_of(db: AsyncSession, who: Who, conversation_id: int) -> ConversationSummary:
    query, _ = _summary_query(who)
    row = (await db.exec(query.where(_C.id == conversation_id))).one()
    return _summary(row)


async def detail_of(db: AsyncSession, who: Who, conversation_id: int) -> ConversationOut:
    summary = await summary_of(db, who, conversation_id)
    times = (await db.exec(
        select(_C.created_at, _C.closed_at, _C.refill_request_id).where(_C.id == conversation_id))).one()
    members = [
        MemberOut(user_id=r.user_id, name=r.display_name or r.username, role=Role(r.role),
                  last_read_seq=r.last_read_seq, last_delivered_seq=r.last_delivered_seq)
        for r in (await db.exec(
            select(_MB.user_id, _MB.last_read_seq, _MB.last_delivered_seq, _U.display_name,
                   _U.username, _U.role)
            .join(User.__table__, _U.id == _MB.user_id)  # type: ignore[arg-type]
            .where(_MB.conversation_id == conversation_id).order_by(_MB.id)
        )).all()
    ]
    return ConversationOut(**summary.model_dump(), created_at=times[0], closed_at=times[1],
                           members=members, refill=await _refill_of(db, times[2]))


async def _refill_of(db: AsyncSession, refill_request_id: int | None) -> RefillOut | None:
    """The carried refill request as the refill pages show it (the caller has
    checked access to the conversation, whose patient it belongs to)."""
    if refill_request_id is None:
        return None
    row = await db.get(RefillRequest, refill_request_id)
    if row is None:
        return None
    [out] = await refills_out(db, [row])
    return out


async def message_page(
    db: AsyncSession, conversation_id: int, *, after: int | None, before: int | None, limit: int,
) -> MessagesOut:
    """``after``: the next ``limit`` messages after it (catching up); otherwise the
    ``limit`` messages before ``before`` (default: the newest). Always in seq order."""
    base = (
        select(_MSG.id, _MSG.seq, _MSG.sender_id, _MSG.client_id, _MSG.body, _MSG.created_at,
               _MSG.attachments, _U.display_name, _U.username, _U.role)
        .join(User.__table__, _U.id == _MSG.sender_id)  # type: ignore[arg-type]
        .where(_MSG.conversation_id == conversation_id)
    )
    if after is not None:
        rows: Sequence[Any] = (await db.exec(
            base.where(_MSG.seq > after).order_by(_MSG.seq).limit(limit + 1))).all()
        more = len(rows) > limit
        rows = rows[:limit]
    else:
        query = base.where(_MSG.seq < before) if before is not None else base
        rows = (await db.exec(query.order_by(_MSG.seq.desc()).limit(limit + 1))).all()
        more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    last_seq = (await db.exec(select(_C.last_seq).where(_C.id == conversation_id))).scalar_one()
    return MessagesOut(
        messages=[MessageOut(id=r.id, conversation_id=conversation_id, seq=r.seq, sender_id=r.sender_id,
                             sender_name=r.display_name or r.username, sender_role=Role(r.role),
                             client_id=r.client_id, body=r.body, sent_at=r.created_at,
                             attachments=attachments_of(r.attachments)) for r in rows],
        last_seq=last_seq, more=more,
    )


def attachments_of(stored: str | None) -> list[AttachmentOut]:
    """A message's ``attachments`` column as the API shows it."""
    return [AttachmentOut(**item) for item in json.loads(stored)] if stored else []


async def practitioner_names(db: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    t = Practitioner.__table__.c  # type: ignore[attr-defined]
    rows = (await db.exec(
        select(t.id, t.prefix, t.given_name, t.family_name, t.suffix).where(t.id.in_(set(ids))))).all()
    return {r.id: practitioner_name(r) for r in rows}
