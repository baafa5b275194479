"""Who may read and write a conversation: the care-team rule.

- A patient: their own conversations only (someone else's answers 404, as an
  id that does not exist would, and the refusal is audited).
- A provider: conversations routed to them, and those of the patients whose
  record names them as primary practitioner (their panel).
- Staff: every conversation. There is no staff-to-provider link in the records
  yet, so the clinic's staff act as one front desk for all providers; when a
  link exists, ``may_access`` is the one place to narrow it.
- Admins: none (they run accounts, not care).

``may_access`` is pure, so a socket can re-decide for all its followers from
one database read when a conversation is routed elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, User
from rtc_server.chat.models import Conversation, Status
from rtc_server.errors import NotFound
from rtc_server.records.models import Patient


@dataclass(frozen=True, slots=True)
class Who:
    """What the rule needs to know about a person."""

    user_id: int
    role: Role
    patient_id: int | None
    practitioner_id: int | None


@dataclass(frozen=True, slots=True)
class ConversationAccess:
    """What the rule needs to know about a conversation."""

    id: int
    patient_id: int
    routed_to_id: int | None
    primary_practitioner_id: int | None
    status: str
    last_seq: int = 0
    #: Set for a video visit's in-call chat, which only the visit API reaches (``rooms.visitchat``).
    visit_id: int | None = None


def may_access(who: Who, conv: ConversationAccess) -> bool:
    if conv.visit_id is not None:  # a visit's chat: its admitted participants, through the visit API
        return False
    if who.role == Role.patient:
        return who.patient_id is not None and who.patient_id == conv.patient_id
    if who.role == Role.staff:
        return True
    if who.role == Role.provider:
        mine = who.practitioner_id
        return mine is not None and mine in (conv.routed_to_id, conv.primary_practitioner_id)
    return False


async def who_is(db: AsyncSession, actor: Actor) -> Who:
    """``actor`` as the rule sees them (a provider's practitioner row is read once)."""
    practitioner_id = None
    if actor.role == Role.provider:
        practitioner_id = (await db.exec(
            select(User.practitioner_id).where(User.id == actor.user_id))).scalar_one_or_none()
    return Who(actor.user_id, Role(actor.role), actor.patient_id, practitioner_id)


async def load_access(db: AsyncSession, conversation_id: int) -> ConversationAccess | None:
    c, p = Conversation.__table__.c, Patient.__table__.c  # type: ignore[attr-defined]
    row = (await db.exec(
        select(c.id, c.patient_id, c.routed_to_id, p.primary_practitioner_id, c.status, c.last_seq,
               c.visit_id)
        .join(Patient.__table__, p.id == c.patient_id)  # type: ignore[attr-defined]
        .where(c.id == conversation_id)
    )).first()
    if row is None:
        return None
    return ConversationAccess(*row)


async def require_access(
    db: AsyncSession, actor: Actor, who: Who, conversation_id: int, *, action: str,
) -> ConversationAccess:
    """The conversation if ``who`` may use it; otherwise NotFound (whether it is
    someone else's or does not exist). Refusing someone else's is audited as
    ``denied`` by whoever maps the error (``Actor.require``)."""
    conv = await load_access(db, conversation_id)
    if conv is None:
        raise NotFound()
    actor.require(may_access(who, conv), action=action, resource=f"conversation:{conv.id}",
                  patient_id=conv.patient_id, error=NotFound())
    return conv


def is_open(conv: ConversationAccess) -> bool:
    return conv.status == Status.open
