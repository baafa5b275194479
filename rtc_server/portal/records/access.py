"""Who may read whose chart, decided in one place.

- A patient reads only their own record. Any other patient's id answers 404,
  the same as an id that does not exist.
- A provider reads the charts of their own patients: those whose primary
  practitioner they are, whom they have seen (an encounter) or who booked them
  (an appointment that still holds its time). Any other chart opens only after
  they type a cross-cover reason (``grant_cross_cover``), for
  ``CROSS_COVER_HOURS``.
- Front-desk and help-desk staff are refused charts and lab results; admins run
  the portal and are not clinicians: refused too.

Every refusal is audited as ``denied`` (``Actor.require`` carries the denial to
the transport, which writes it); every read is audited by the service that
reads, naming the access (``resource`` says ``cross_cover:<grant>`` when a
reason opened the chart).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, User
from rtc_server.errors import Forbidden, NotFound
from rtc_server.portal.records.models import ChartAccess
from rtc_server.records.models import (
    RELEASED_APPOINTMENT_STATUSES,
    Appointment,
    Encounter,
    Patient,
)

CROSS_COVER_HOURS = 12


class CrossCoverRequired(Forbidden):
    code = "cross_cover_required"
    message = ("This patient is not in your care. To open the chart, give a cross-cover reason; "
               "it is recorded.")


@dataclass(frozen=True)
class ChartOpen:
    """A chart the actor may read, and why."""

    patient_id: int
    #: self, care_team or cross_cover
    via: str
    grant_id: int | None = None

    @property
    def resource(self) -> str:
        base = f"patient:{self.patient_id}"
        return f"{base};cross_cover:{self.grant_id}" if self.grant_id is not None else base


async def record(
    db: AsyncSession, actor: Actor, action: str, *, patient_id: int | None,
    resource: str | None = None, outcome: str = "success",
) -> None:
    """An audit row for ``actor`` in ``db``'s transaction."""
    await audit.record(
        db, action=action, outcome=outcome, actor_id=actor.user_id, actor_role=str(actor.role),
        patient_id=patient_id, resource=resource, request_id=actor.meta.request_id, ip=actor.meta.ip,
    )


def own_patient(actor: Actor, action: str) -> int:
    """The caller's own patient id; anyone who is not a patient is refused (403, audited)."""
    actor.require(actor.is_patient and actor.patient_id is not None, action=action)
    assert actor.patient_id is not None
    return actor.patient_id


async def practitioner_of(db: AsyncSession, actor: Actor) -> int | None:
    """The Practitioner on file that a provider's account is linked to."""
    return (await db.exec(select(User.practitioner_id).where(col(User.id) == actor.user_id))).first()


def care_team_clause(practitioner_id: int, patient_id_column: Any) -> Any:
    """SQL: the patient in ``patient_id_column`` is in ``practitioner_id``'s care.
    (Uncorrelated IN subqueries: each reads one indexed practitioner column.)"""
    return or_(
        patient_id_column.in_(select(Patient.id).where(
            col(Patient.primary_practitioner_id) == practitioner_id)),
        patient_id_column.in_(select(Encounter.patient_id).where(
            col(Encounter.practitioner_id) == practitioner_id)),
        patient_id_column.in_(select(Appointment.patient_id).where(
            col(Appointment.practitioner_id) == practitioner_id,
            col(Appointment.status).not_in(RELEASED_APPOINTMENT_STATUSES))),
    )


def grant_clause(user_id: int, patient_id_column: Any, now: datetime) -> Any:
    """SQL: ``user_id`` holds a live cross-cover grant for the patient in ``patient_id_column``."""
    return patient_id_column.in_(select(ChartAccess.patient_id).where(
        col(ChartAccess.user_id) == user_id, col(ChartAccess.expires_at) > now))


async def in_care_team(db: AsyncSession, practitioner_id: int | None, patient_id: int) -> bool:
    if practitioner_id is None:
        return False
    query = select(col(Patient.id)).where(col(Patient.id) == patient_id,
                                          care_team_clause(practitioner_id, col(Patient.id)))
    return (await db.exec(query)).first() is not None


async def live_grant(db: AsyncSession, user_id: int, patient_id: int, now: datetime) -> int | None:
    query = (select(ChartAccess.id)
             .where(col(ChartAccess.user_id) == user_id, col(ChartAccess.patient_id) == patient_id,
                    col(ChartAccess.expires_at) > now)
             .order_by(col(ChartAccess.expires_at).desc()))
    return (await db.exec(query)).first()


def require_clinician(actor: Actor, action: str, resource: str | None = None,
                      patient_id: int | None = None) -> None:
    """Providers only: staff (front desk, help desk), admins and patients are refused (403)."""
    actor.require(actor.role == Role.provider, action=action, resource=resource, patient_id=patient_id)


async def open_chart(db: AsyncSession, actor: Actor, patient_id: int, *, action: str,
                     now: datetime) -> ChartOpen:
    """The chart of ``patient_id`` if ``actor`` may read it; refuses (audited) otherwise."""
    resource = f"patient:{patient_id}"
    if actor.is_patient:
        actor.require(actor.patient_id == patient_id, action=action, resource=resource,
                      patient_id=patient_id, error=NotFound())
        return ChartOpen(patient_id, "self")
    require_clinician(actor, action, resource, patient_id)
    actor.require(await db.get(Patient, patient_id) is not None, action=action, resource=resource,
                  error=NotFound())
    if await in_care_team(db, await practitioner_of(db, actor), patient_id):
        return ChartOpen(patient_id, "care_team")
    grant = await live_grant(db, actor.user_id, patient_id, now)
    actor.require(grant is not None, action=action, resource=resource, patient_id=patient_id,
                  error=CrossCoverRequired())
    return ChartOpen(patient_id, "cross_cover", grant)


async def grant_cross_cover(db: AsyncSession, actor: Actor, patient_id: int, *, reason: str,
                            now: datetime) -> ChartAccess:
    """Open another provider's patient's chart to ``actor`` for CROSS_COVER_HOURS, with
    the reason they typed (audited as ``chart.cross_cover``). The caller commits."""
    action = "chart.cross_cover"
    resource = f"patient:{patient_id}"
    require_clinician(actor, action, resource, patient_id)
    actor.require(await db.get(Patient, patient_id) is not None, action=action, resource=resource,
                  error=NotFound())
    grant = ChartAccess(user_id=actor.user_id, patient_id=patient_id, reason=reason,
                        granted_at=now, expires_at=now + timedelta(hours=CROSS_COVER_HOURS))
    db.add(grant)
    await db.flush()
    await record(db, actor, action, patient_id=patient_id, resource=f"{resource};cross_cover:{grant.id}")
    return grant
