"""The care team's side of a conversation: route it to another provider,
close it, reopen it. Providers and staff only (a patient is refused 403,
audited); each change is audited and announced (``chat.changed`` on the
conversation, ``chat.conversation`` to each member's pages)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, User, UserStatus
from rtc_server.chat import queries
from rtc_server.chat.access import ConversationAccess, require_access, who_is
from rtc_server.chat.models import Conversation, Status
from rtc_server.chat.relay import KIND_CHANGED
from rtc_server.chat.service import KIND_CONVERSATION, audit_conversation, ensure_member, member_ids
from rtc_server.chat.shapes import ConversationOut, ProviderOut
from rtc_server.errors import Conflict, InvalidInput
from rtc_server.notify.events import announce, conversation_channel, user_channel
from rtc_server.records.models import Practitioner

_C = Conversation.__table__.c  # type: ignore[attr-defined]
_U = User.__table__.c  # type: ignore[attr-defined]


async def _changed(db: AsyncSession, conv: ConversationAccess) -> None:
    announce(db, conversation_channel(conv.id), {"kind": KIND_CHANGED, "conversation_id": conv.id})
    for uid in await member_ids(db, conv.id):
        announce(db, user_channel(uid), {"kind": KIND_CONVERSATION, "conversation_id": conv.id})


async def _team_member(db: AsyncSession, actor: Actor, conversation_id: int, action: str):  # type: ignore[no-untyped-def]
    actor.require_role(Role.provider, Role.staff, action=action, resource=f"conversation:{conversation_id}")
    who = await who_is(db, actor)
    return who, await require_access(db, actor, who, conversation_id, action=action)


async def set_status(
    db: AsyncSession, actor: Actor, conversation_id: int, status: Status, *, now: datetime,
) -> ConversationOut:
    """Close or reopen. Closing twice (or reopening an open one) is a 409."""
    action = "chat.close" if status == Status.closed else "chat.reopen"
    who, conv = await _team_member(db, actor, conversation_id, action)
    other = Status.open if status == Status.closed else Status.closed
    changed = (await db.exec(
        update(Conversation.__table__).where(_C.id == conv.id, _C.status == other)  # type: ignore[arg-type]
        .values(status=status, closed_at=now if status == Status.closed else None))).rowcount
    if not changed:
        raise Conflict(f"This conversation is already {status.value}.", code=f"already_{status.value}")
    await audit_conversation(db, actor, action, conv)
    await _changed(db, conv)
    await db.commit()
    return await queries.detail_of(db, who, conv.id)


async def route(
    db: AsyncSession, actor: Actor, conversation_id: int, provider_id: int, *, now: datetime,
) -> ConversationOut:
    """Hand the conversation to another provider: it appears in their inbox and
    they become a member (their account, if they have one, is notified)."""
    who, conv = await _team_member(db, actor, conversation_id, "chat.route")
    target = await db.get(Practitioner, provider_id)
    if target is None or not target.active:
        raise InvalidInput("provider_id", "Choose a provider of this clinic.")
    await db.exec(update(Conversation.__table__).where(_C.id == conv.id)  # type: ignore[arg-type]
                     .values(routed_to_id=provider_id))
    for uid in (await db.exec(select(_U.id).where(
            _U.practitioner_id == provider_id, _U.role == Role.provider))).scalars():
        await ensure_member(db, conv.id, uid, now)
    await audit_conversation(db, actor, "chat.route", conv, detail=f"->practitioner:{provider_id}")
    await _changed(db, conv)
    await db.commit()
    return await queries.detail_of(db, who, conv.id)


async def route_targets(db: AsyncSession, actor: Actor) -> list[ProviderOut]:
    """Providers a conversation can be routed to: active practitioners with a
    provider account (someone who can read it)."""
    actor.require_role(Role.provider, Role.staff, action="chat.route_targets")
    t = Practitioner.__table__.c  # type: ignore[attr-defined]
    rows = (await db.exec(
        select(t.id, t.prefix, t.given_name, t.family_name, t.suffix, t.specialty)
        .join(User.__table__, _U.practitioner_id == t.id)  # type: ignore[arg-type]
        .where(t.active.is_(True), _U.role == Role.provider, _U.status == UserStatus.active)
        .order_by(t.family_name, t.given_name))).all()
    return [ProviderOut(id=r.id, name=queries.practitioner_name(r), specialty=r.specialty) for r in rows]
