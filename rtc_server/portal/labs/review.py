"""The clinician's side of lab results: the review queue, releasing a held result
(optionally with a note for the patient), entering a result, and the clinic's
per-test hold list.

Rules:
- The queue, releasing and entering are for providers, on the charts they may
  read (``records.access``: their own patients, or others after a cross-cover
  reason). Front-desk and help-desk staff, admins and patients are refused
  (403, audited as ``denied``).
- The hold list is set by providers and admins (it is clinic policy, not a
  chart); a test code without a hold is released at once.
- Releasing is a conditional update (``held`` → ``released``): two clinicians
  releasing the same result at once give one release and one 409. After commit
  the patient gets ``{"kind": "lab_result", "id"}`` on ``user:<id>`` and an
  email or text by their choice, with no health data in it.
- Every read and change is audited: the queue writes one row per patient shown.

Services commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role
from rtc_server.config import Settings
from rtc_server.errors import Conflict, NotFound
from rtc_server.portal.labs.models import LabHoldRule, LabRelease, LabState
from rtc_server.portal.labs.release import (
    LAB_CATEGORY,
    LOINC,
    hold_rules,
    notify_patient,
    notify_reviewers,
    triage,
)
from rtc_server.portal.labs.service import RESULT_COLUMNS, result_out
from rtc_server.portal.labs.shapes import (
    EnteredOut,
    HoldRuleIn,
    HoldRuleOut,
    HoldRulesOut,
    PatientRef,
    ReleasedOut,
    ResultIn,
    ReviewItemOut,
)
from rtc_server.portal.records.access import (
    care_team_clause,
    grant_clause,
    open_chart,
    practitioner_of,
    record,
    require_clinician,
)
from rtc_server.portal.records.models import ChartAccess
from rtc_server.records.models import (
    RELEASED_APPOINTMENT_STATUSES,
    Appointment,
    Encounter,
    Observation,
    Patient,
)

QUEUE_LIMIT = 200


class AlreadyReleased(Conflict):
    code = "already_released"
    message = "This result has already been released."


async def _patients_in_reach(db: AsyncSession, actor: Actor, practitioner_id: int | None,
                             now: datetime) -> tuple[set[int], set[int]]:
    """(the provider's own patients, patients opened to them by cross-cover)."""
    own: set[int] = set()
    if practitioner_id is not None:
        own |= set((await db.exec(select(Patient.id).where(
            col(Patient.primary_practitioner_id) == practitioner_id))).all())
        own |= set((await db.exec(select(Encounter.patient_id).where(
            col(Encounter.practitioner_id) == practitioner_id).distinct())).all())
        own |= set((await db.exec(select(Appointment.patient_id).where(
            col(Appointment.practitioner_id) == practitioner_id,
            col(Appointment.status).not_in(RELEASED_APPOINTMENT_STATUSES)).distinct())).all())
    covered = set((await db.exec(select(ChartAccess.patient_id).where(
        col(ChartAccess.user_id) == actor.user_id, col(ChartAccess.expires_at) > now))).all())
    own.discard(None)  # type: ignore[arg-type]
    return own, covered - own


async def review_queue(db: AsyncSession, actor: Actor, *, now: datetime) -> list[ReviewItemOut]:
    """Held results of the patients whose charts the provider may read, oldest first."""
    action = "lab.review_queue"
    require_clinician(actor, action)
    practitioner_id = await practitioner_of(db, actor)
    own, covered = await _patients_in_reach(db, actor, practitioner_id, now)
    if own or covered:
        await triage(db, now=now, patient_ids=sorted(own | covered))
    reach = [grant_clause(actor.user_id, col(LabRelease.patient_id), now)]
    if practitioner_id is not None:
        reach.append(care_team_clause(practitioner_id, col(LabRelease.patient_id)))
    rows = (await db.exec(
        select(*RESULT_COLUMNS, Patient.given_name, Patient.family_name, Patient.birth_date,
               LabRelease.patient_id)
        .join(LabRelease, col(LabRelease.observation_id) == col(Observation.id))
        .join(Patient, col(Patient.id) == col(LabRelease.patient_id))
        .where(col(LabRelease.state) == LabState.held.value, or_(*reach))
        .order_by(col(LabRelease.held_at), col(Observation.id))
        .limit(QUEUE_LIMIT)
    )).all()
    out = []
    for r in rows:
        result = result_out(r)
        out.append(ReviewItemOut(
            id=r.id,
            patient=PatientRef(id=r.patient_id, name=f"{r.given_name} {r.family_name}".strip(),
                               birth_date=r.birth_date.isoformat()),
            code=result.code, display=result.display, value=result.value, value_text=result.value_text,
            unit=result.unit, reference_range=result.reference_range, flag=result.flag,
            flag_label=result.flag_label, effective_at=result.effective_at, held_at=r.held_at,
            access="care_team" if r.patient_id in own else "cross_cover",
        ))
    for patient_id in sorted({item.patient.id for item in out}):
        await record(db, actor, action, patient_id=patient_id, resource=f"patient:{patient_id}")
    if not out:
        await record(db, actor, action, patient_id=None, resource="empty")
    await db.commit()
    return out


async def release_result(
    db: AsyncSession, actor: Actor, observation_id: int, *, note: str | None, settings: Settings,
    now: datetime,
) -> ReleasedOut:
    """Release a held result to its patient (see the module docstring)."""
    action = "lab.release"
    resource = f"observation:{observation_id}"
    require_clinician(actor, action, resource)
    row = await db.get(LabRelease, observation_id)
    actor.require(row is not None, action=action, resource=resource, error=NotFound())
    assert row is not None
    chart = await open_chart(db, actor, row.patient_id, action=action, now=now)
    result = await db.exec(  # type: ignore[call-overload]
        update(LabRelease)
        .where(col(LabRelease.observation_id) == observation_id,
               col(LabRelease.state) == LabState.held.value)
        .values(state=LabState.released.value, released_at=now, released_by=actor.user_id, note=note,
                announced=True, opened_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise AlreadyReleased()
    await record(db, actor, action, patient_id=row.patient_id,
                 resource=f"{resource};{chart.resource}"[:128])
    await notify_patient(db, settings, row.patient_id, [observation_id])
    await notify_reviewers(db, row.patient_id, [observation_id])
    await db.commit()
    return ReleasedOut(id=observation_id, patient_id=row.patient_id, state=LabState.released,
                       released_at=now, note=note)


async def enter_result(
    db: AsyncSession, actor: Actor, patient_id: int, body: ResultIn, *, settings: Settings,
    now: datetime,
) -> EnteredOut:
    """A result typed in by a clinician: stored as a lab Observation and classified
    by the hold list like an imported one (released at once, or held for review)."""
    action = "lab.enter"
    require_clinician(actor, action, f"patient:{patient_id}", patient_id)
    chart = await open_chart(db, actor, patient_id, action=action, now=now)
    obs = Observation(
        patient_id=patient_id, status="final", category=LAB_CATEGORY, code_system=LOINC, code=body.code,
        display=body.display, value_quantity=body.value, value_unit=body.unit,
        value_string=body.value_text, reference_low=body.reference_low,
        reference_high=body.reference_high, effective_at=body.effective_at or now, issued_at=now,
    )
    db.add(obs)
    await db.flush()
    assert obs.id is not None
    held = body.code in await hold_rules(db)
    db.add(LabRelease(
        observation_id=obs.id, patient_id=patient_id,
        state=(LabState.held if held else LabState.released).value,
        held_at=now if held else None, released_at=None if held else now, entered_by=actor.user_id,
        announced=not held,
    ))
    await record(db, actor, action, patient_id=patient_id,
                 resource=f"observation:{obs.id};{chart.resource}"[:128])
    if held:
        await notify_reviewers(db, patient_id, [obs.id])
    else:
        await notify_patient(db, settings, patient_id, [obs.id])
    await db.commit()
    return EnteredOut(id=obs.id, patient_id=patient_id,
                      state=LabState.held if held else LabState.released)


# --- the hold list ---------------------------------------------------------------------

def _may_set_holds(actor: Actor, action: str, resource: str | None = None) -> None:
    actor.require(actor.role in (Role.provider, Role.admin), action=action, resource=resource)


def _rule_out(rule: LabHoldRule) -> HoldRuleOut:
    return HoldRuleOut(code=rule.code, display=rule.display, reason=rule.reason, set_at=rule.set_at)


async def list_hold_rules(db: AsyncSession, actor: Actor) -> HoldRulesOut:
    action = "lab.hold_rules"
    _may_set_holds(actor, action)
    out = HoldRulesOut(holds=[_rule_out(r) for r in (await hold_rules(db)).values()])
    await record(db, actor, action, patient_id=None)
    await db.commit()
    return out


async def set_hold_rule(db: AsyncSession, actor: Actor, body: HoldRuleIn, *, now: datetime) -> HoldRuleOut:
    """Hold results of ``body.code`` for review from now on (results already
    released stay released); replaces the reason of an existing hold."""
    action = "lab.hold_rule.set"
    resource = f"loinc:{body.code}"
    _may_set_holds(actor, action, resource)
    rule = (await db.exec(select(LabHoldRule).where(col(LabHoldRule.code) == body.code))).first()
    if rule is None:
        rule = LabHoldRule(code=body.code, display=body.display, reason=body.reason,
                           set_by=actor.user_id, set_at=now)
    else:
        rule.display, rule.reason, rule.set_by, rule.set_at = body.display, body.reason, actor.user_id, now
    db.add(rule)
    await record(db, actor, action, patient_id=None, resource=resource)
    await db.commit()
    return _rule_out(rule)


async def remove_hold_rule(db: AsyncSession, actor: Actor, code: str) -> None:
    """Release results of ``code`` at once from now on (held ones still wait for review)."""
    action = "lab.hold_rule.remove"
    resource = f"loinc:{code[:32]}"
    _may_set_holds(actor, action, resource)
    result = await db.exec(delete(LabHoldRule).where(col(LabHoldRule.code) == code))  # type: ignore[call-overload]
    actor.require(result.rowcount == 1, action=action, resource=resource, error=NotFound())
    await record(db, actor, action, patient_id=None, resource=resource)
    await db.commit()
