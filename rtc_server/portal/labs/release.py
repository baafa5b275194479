"""Release rules: classify every lab result as released or held, and tell people.

``triage`` gives each lab observation that has no ``LabRelease`` row yet its
row: ``held`` when the clinic holds its test code (``LabHoldRule``), else
``released`` at once. Results reach patients only through that table (see
``models``), so a result is invisible until classified and a held one until a
clinician releases it. Who calls ``triage``:

- every patient and chart read, for that patient (a result imported a moment
  ago is classified before it could be shown);
- ``triage_imported`` right after a FHIR import (the import path calls it), which
  also notifies the patients of what was released;
- the review queue, for the patients whose results it lists.

A result counts as news (``announced``: "new" on the dashboard until opened,
with an event and an email or text) when it was released by a clinician, entered
in the console, or imported with a date within ``NEW_WINDOW``; a year of history
arriving with a record does not.

Notifications never carry health data: the event is ``{"kind": "lab_result",
"id": <observation id>}`` on the patient's ``user:<id>`` channel after commit;
the email or text says "You have a new result in the portal" and links to it,
by the channels the patient chose in Account Settings (``lab_results``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, bindparam, exists, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import User, UserStatus
from rtc_server.config import Settings
from rtc_server.db import after_commit, as_utc
from rtc_server.notify.events import announce, user_channel
from rtc_server.notify.mail import compose
from rtc_server.notify.outbox import queue_mail
from rtc_server.portal.labs.models import LabHoldRule, LabRelease, LabState
from rtc_server.records.models import Encounter, Observation, Patient

log = logging.getLogger("rtc_server.labs")

LAB_CATEGORY = "laboratory"
LOINC = "http://loinc.org"
#: An imported result this recent is news to the patient; older ones are history.
NEW_WINDOW = timedelta(days=30)
NOTICE_KIND = "lab_result"
CHUNK = 500


@dataclass(frozen=True)
class Classified:
    observation_id: int
    patient_id: int
    state: LabState
    announced: bool


_HOLD_RULES = select(LabHoldRule).order_by(col(LabHoldRule.code))


async def hold_rules(db: AsyncSession) -> dict[str, LabHoldRule]:
    return {r.code: r for r in (await db.exec(_HOLD_RULES)).all()}


def _is_news(effective: datetime | None, now: datetime) -> bool:
    when = as_utc(effective)
    return when is not None and now - when <= NEW_WINDOW


def _insert_ignoring_duplicates(db: AsyncSession) -> object:
    """INSERT … ON CONFLICT DO NOTHING: two requests classifying the same new
    result at once both succeed, and the first row stands."""
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(LabRelease).on_conflict_do_nothing(index_elements=["observation_id"])
    if dialect == "sqlite":
        return sqlite.insert(LabRelease).on_conflict_do_nothing(index_elements=["observation_id"])
    return insert(LabRelease)  # pragma: no cover


#: Lab observations without a release row (statements built once: see ``triage``).
_UNCLASSIFIED = (
    select(Observation.id, Observation.patient_id, Observation.code, Observation.effective_at,
           Observation.issued_at)
    .where(col(Observation.category) == LAB_CATEGORY,
           ~exists().where(col(LabRelease.observation_id) == col(Observation.id)))
)
_UNCLASSIFIED_OF = _UNCLASSIFIED.where(col(Observation.patient_id) == bindparam("patient_id", type_=Integer))
#: The unclassified lab results of ``:patient_id`` (a patient read classifies them first).
UNCLASSIFIED_OF = _UNCLASSIFIED_OF


async def triage(
    db: AsyncSession, *, now: datetime, patient_ids: Sequence[int] | None = None,
) -> list[Classified]:
    """Classify the unclassified lab results of ``patient_ids`` (all patients when
    None) in the caller's transaction; what was classified (the caller commits)."""
    unclassified = _UNCLASSIFIED
    found: list[tuple[int, int, str | None, datetime | None, datetime | None]] = []
    if patient_ids is None:
        found = list((await db.exec(unclassified)).all())  # type: ignore[arg-type]
    elif len(patient_ids) == 1:  # every patient read: one prepared statement
        found = list((await db.exec(_UNCLASSIFIED_OF, params={"patient_id": patient_ids[0]})).all())  # type: ignore[arg-type]
    else:
        ids = sorted(set(patient_ids))
        for i in range(0, len(ids), CHUNK):
            query = unclassified.where(col(Observation.patient_id).in_(ids[i:i + CHUNK]))
            found.extend((await db.exec(query)).all())  # type: ignore[arg-type]
    if not found:
        return []
    rules = await hold_rules(db)
    out: list[Classified] = []
    values = []
    for obs_id, patient_id, code, effective, issued in found:
        held = code is not None and code in rules
        news = not held and _is_news(effective or issued, now)
        out.append(Classified(obs_id, patient_id, LabState.held if held else LabState.released, news))
        values.append({
            "observation_id": obs_id, "patient_id": patient_id,
            "state": (LabState.held if held else LabState.released).value,
            "held_at": now if held else None, "released_at": None if held else now,
            "released_by": None, "entered_by": None, "note": None, "announced": news,
            "opened_at": None,
        })
    statement = _insert_ignoring_duplicates(db)
    for i in range(0, len(values), CHUNK):
        await db.exec(statement, params=values[i:i + CHUNK])  # type: ignore[call-overload]
    return out


async def triage_imported(
    db: AsyncSession, settings: Settings, *, now: datetime, patient_ids: Iterable[int] | None = None,
) -> list[Classified]:
    """After a FHIR import: classify the new lab results (of ``patient_ids``, or
    every patient) and notify each patient once of what was released as news,
    and the care team of what is held. The caller commits."""
    done = await triage(db, now=now, patient_ids=list(patient_ids) if patient_ids is not None else None)
    news: dict[int, list[int]] = {}
    held: dict[int, list[int]] = {}
    for c in done:
        if c.state == LabState.released and c.announced:
            news.setdefault(c.patient_id, []).append(c.observation_id)
        elif c.state == LabState.held:
            held.setdefault(c.patient_id, []).append(c.observation_id)
    for patient_id, ids in news.items():
        await notify_patient(db, settings, patient_id, ids)
    for patient_id, ids in held.items():
        await notify_reviewers(db, patient_id, ids)
    return done


# --- telling people ------------------------------------------------------------------

async def patient_user(db: AsyncSession, patient_id: int) -> User | None:
    return (await db.exec(select(User).where(col(User.patient_id) == patient_id,
                                             col(User.status) == UserStatus.active))).first()


async def notify_patient(
    db: AsyncSession, settings: Settings, patient_id: int, observation_ids: Sequence[int],
) -> None:
    """Events for ``observation_ids`` and one email and/or text (the patient's
    ``lab_results`` choice) saying only that there is a new result; all after commit."""
    from rtc_server.portal.account.service import notifications_of

    user = await patient_user(db, patient_id)
    if user is None or user.id is None:
        return
    for obs_id in observation_ids:
        announce(db, user_channel(user.id), {"kind": NOTICE_KIND, "id": obs_id})
    prefs = notifications_of(user).get("lab_results", {})
    link = f"{settings.base_url}/app/records.html#labs"
    if prefs.get("email") and user.email:
        first = user.display_name.split(" ")[0] if user.display_name else None
        queue_mail(db, compose(
            NOTICE_KIND, user.email, f"{settings.clinic_name}: you have a new result in the portal",
            settings.clinic_name, first,
            ["You have a new result in the portal.", "Sign in to the patient portal to see it."],
            action=("Open the patient portal", link),
        ))
    phone = user.phone
    if phone is None:
        patient = await db.get(Patient, patient_id)
        phone = patient.phone if patient else None
    if prefs.get("sms") and phone:
        text = f"{settings.clinic_name}: You have a new result in the portal. {link}"
        _text_after_commit(db, settings, phone, text)


def _text_after_commit(db: AsyncSession, settings: Settings, phone: str, text: str) -> None:
    from rtc_server.portal.appointments.sms import OutboxSmsSender

    sender = OutboxSmsSender(settings.outbox_dir)

    async def send() -> None:
        try:
            await sender.send(phone, text, kind=NOTICE_KIND)
        except Exception as exc:  # the result is released and the email (if any) goes
            log.warning("could not send a new-result text: %s", type(exc).__name__)

    after_commit(db, send)


async def reviewer_users(db: AsyncSession, patient_id: int) -> list[int]:
    """Accounts of the patient's care team (primary practitioner and those who saw them)."""
    patient = await db.get(Patient, patient_id)
    practitioners = set((await db.exec(
        select(Encounter.practitioner_id).where(col(Encounter.patient_id) == patient_id).distinct()
    )).all())
    if patient is not None and patient.primary_practitioner_id is not None:
        practitioners.add(patient.primary_practitioner_id)
    practitioners.discard(None)
    if not practitioners:
        return []
    return [u for u in (await db.exec(
        select(User.id).where(col(User.practitioner_id).in_(practitioners),
                              col(User.status) == UserStatus.active)
    )).all() if u is not None]


async def notify_reviewers(db: AsyncSession, patient_id: int, observation_ids: Sequence[int]) -> None:
    """``{"kind": "lab_review", "id"}`` to the care team's consoles, after commit."""
    for user_id in await reviewer_users(db, patient_id):
        for obs_id in observation_ids:
            announce(db, user_channel(user_id), {"kind": "lab_review", "id": obs_id})
