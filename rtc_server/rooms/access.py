"""Who may reach a visit, and as what; the names pages show.

- A patient reaches only their own visits; any other visit id answers 404,
  exactly like one that does not exist (audited as ``denied``).
- A provider reaches the visits in their own waiting room (their account is
  linked to the visit's practitioner); they are its host.
- A guest (an invited third participant) reaches only the visit they were
  admitted or invited to, and sees nothing of the record.
- Staff and admins reach no visit; staff may read a waiting room (``queue``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, User
from rtc_server.errors import Conflict, NotFound
from rtc_server.records.models import Patient, Practitioner
from rtc_server.rooms.models import Participant, ParticipantRole, Visit


async def linked_practitioner(db: AsyncSession, actor: Actor) -> int | None:
    """The practitioner on file a provider's account is linked to."""
    return (await db.exec(select(User.practitioner_id).where(User.id == actor.user_id))).first()


async def own_practitioner(db: AsyncSession, actor: Actor, action: str) -> int:
    """A provider's practitioner id; anyone else is refused (403, audited), an
    unlinked provider gets 409 ``not_linked``."""
    actor.require_role(Role.provider, action=action)
    practitioner_id = await linked_practitioner(db, actor)
    if practitioner_id is None:
        raise Conflict("Your account is not linked to a practitioner on file. "
                       "Ask an administrator to link it.", code="not_linked")
    return practitioner_id


async def visit_role(db: AsyncSession, actor: Actor, visit_id: int, action: str) -> tuple[Visit, str]:
    """The visit and the caller's role in it (patient, provider or guest), or 404."""
    visit = await db.get(Visit, visit_id)
    role: str | None = None
    if visit is not None:
        if actor.is_patient:
            role = ParticipantRole.patient if visit.patient_id == actor.patient_id else None
        elif actor.role == Role.provider:
            if visit.practitioner_id == await linked_practitioner(db, actor):
                role = ParticipantRole.provider
        if role is None and not actor.is_patient:
            row = (await db.exec(select(Participant.role).where(
                Participant.visit_id == visit_id, Participant.user_id == actor.user_id))).first()
            role = ParticipantRole.guest if row == ParticipantRole.guest else None
    actor.require(role is not None, action=action, resource=f"visit:{visit_id}",
                  patient_id=visit.patient_id if visit is not None and actor.is_patient else None,
                  error=NotFound())
    assert visit is not None and role is not None
    return visit, str(role)


async def practitioner_names(db: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = (await db.exec(select(Practitioner).where(col(Practitioner.id).in_(wanted)))).all()
    return {p.id: p.display_name for p in rows if p.id is not None}


async def patient_names(db: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = (await db.exec(select(Patient.id, Patient.given_name, Patient.family_name)
                          .where(col(Patient.id).in_(wanted)))).all()
    return {pid: f"{given} {family}".strip() for pid, given, family in rows}


def shown_to(viewer_role: str, role: str, name: str) -> str:
    """How a participant's name is shown to a viewer: a guest sees the patient's
    first name only (they take part in the call, not in the record)."""
    if viewer_role == ParticipantRole.guest and role == ParticipantRole.patient:
        return name.split(" ", 1)[0] or "Patient"
    return name


def practitioner_name(names: dict[int, str], practitioner_id: int) -> str:
    return names.get(practitioner_id) or "Your provider"


async def participant_names(db: AsyncSession, visit: Visit,
                            rows: Iterable[Participant]) -> dict[int, str]:
    """Participant id → how the call shows them: the patient's name, the
    provider's, or a guest's label. Never anything else from the record."""
    rows = list(rows)
    patient = (await patient_names(db, [visit.patient_id])).get(visit.patient_id, "Patient")
    provider = practitioner_name(await practitioner_names(db, [visit.practitioner_id]),
                                 visit.practitioner_id)
    out: dict[int, str] = {}
    for row in rows:
        assert row.id is not None
        if row.role == ParticipantRole.patient:
            out[row.id] = patient
        elif row.role == ParticipantRole.provider:
            out[row.id] = provider
        else:
            out[row.id] = row.label or "Guest"
    return out
