"""Virtual visits: listing, check-in, admission, notes, leaving and ending.

Rules every function keeps:

- Access as in ``rooms.access`` (a patient's other visit ids answer 404;
  refusals are audited by the transport).
- A visit from an appointment can be checked into from ``JOIN_EARLY`` before
  its start until ``JOIN_LATE`` after its end, while the visit is open; a
  visit the provider started, while it is open. Check-in stores the accepted
  consent text's version and the time, and requires the current version.
- Nobody enters the call room without being admitted. Admission is one
  conditional UPDATE (``WHERE state = 'waiting'``): two providers clicking
  Admit at once admit once; the loser gets 409 ``already_admitted``.
- A guest admitted to a visit reads its chat only from their admission on
  (``Participant.chat_from_seq``, the chat's last sequence then).
- At most ``MAX_PARTICIPANTS`` (four) take part: admitting a fourth person
  besides the provider is 409 ``visit_full`` (guests: ``rooms.guests``).
- Ending a visit closes it for everyone (``ended_at``, every participant
  ``left``); no media is recorded, the record keeps start, end and who took part.
- Each change writes an audit row in its transaction and announces ids only on
  the visit's channels after commit (``rooms.events``).

Services commit their own transaction. Times are aware UTC; ``now`` comes
from the caller (``Deps.clock``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, User
from rtc_server.config import Settings
from rtc_server.errors import Conflict, InvalidInput, NotFound
from rtc_server.notify.mail import compose
from rtc_server.notify.outbox import queue_mail
from rtc_server.portal.account.service import notifications_of
from rtc_server.portal.records.access import care_team_clause
from rtc_server.records.models import RELEASED_APPOINTMENT_STATUSES, Appointment, Patient, VisitKind
from rtc_server.rooms import events, visitchat
from rtc_server.rooms.access import (
    own_practitioner,
    participant_names,
    practitioner_name,
    practitioner_names,
    shown_to,
    visit_role,
)
from rtc_server.rooms.lobby import AdmitDecision, decide_admit
from rtc_server.rooms.models import (
    MAX_PARTICIPANTS,
    DeviceCheck,
    Participant,
    ParticipantRole,
    ParticipantState,
    Visit,
    VisitStatus,
)
from rtc_server.rooms.shapes import (
    CheckInIn,
    ConsentOut,
    DeviceCheckIn,
    ParticipantOut,
    PastVisitOut,
    PractitionerRef,
    UpcomingVisitOut,
    VisitOut,
    VisitsOut,
)

JOIN_EARLY = timedelta(minutes=15)
JOIN_LATE = timedelta(hours=1)
PAST_LIMIT = 50

CONSENT_VERSION = "2026-11-27"
CONSENT_TEXT = (
    "A virtual visit is a live video call with your provider. It is not recorded. "
    "Your provider may not be able to examine you as fully as in person and may ask you to "
    "come in. Video and sound travel encrypted between your device and the people in the "
    "visit. You can end the call at any time, and you can ask for an in-person visit instead. "
    "In an emergency, call 911."
)

_P = Participant.__table__.c  # type: ignore[attr-defined]
_V = Visit.__table__.c  # type: ignore[attr-defined]


async def _audit(db: AsyncSession, actor: Actor, action: str, *, visit: Visit | None = None,
                 outcome: str = "success") -> None:
    await audit.record(
        db, action=action, outcome=outcome, actor_id=actor.user_id, actor_role=str(actor.role),
        patient_id=visit.patient_id if visit is not None else None,
        resource=f"visit:{visit.id}" if visit is not None else None,
        request_id=actor.meta.request_id, ip=actor.meta.ip,
    )


def join_window(visit: Visit) -> tuple[datetime | None, datetime | None]:
    """From when until when a patient may check in (None: no bound)."""
    start = visit.scheduled_start - JOIN_EARLY if visit.scheduled_start else None
    end = (visit.scheduled_end or visit.scheduled_start)
    return start, (end + JOIN_LATE if end else None)


def _appointment_window(appt: Appointment) -> tuple[datetime, datetime]:
    return appt.start - JOIN_EARLY, appt.end + JOIN_LATE


# --- the Virtual Visits tab ------------------------------------------------------

async def list_visits(db: AsyncSession, actor: Actor, now: datetime) -> VisitsOut:
    """A patient's upcoming video visits (appointments of kind video and visits
    their provider started) and past visits."""
    actor.require(actor.is_patient and actor.patient_id is not None, action="visit.list")
    patient_id = actor.patient_id
    appts = (await db.exec(
        select(Appointment).where(
            Appointment.patient_id == patient_id, Appointment.kind == VisitKind.video.value,
            col(Appointment.status).not_in(RELEASED_APPOINTMENT_STATUSES),
            col(Appointment.end) > now - JOIN_LATE,
        ).order_by(col(Appointment.start)).limit(50)
    )).all()
    by_appt = {v.appointment_id: v for v in (await db.exec(
        select(Visit).where(col(Visit.appointment_id).in_([a.id for a in appts]))
    )).all()} if appts else {}
    unscheduled = (await db.exec(
        select(Visit).where(Visit.patient_id == patient_id, col(Visit.appointment_id).is_(None),
                            Visit.status == VisitStatus.open).order_by(col(Visit.created_at))
    )).all()
    past = (await db.exec(
        select(Visit).where(Visit.patient_id == patient_id, Visit.status == VisitStatus.ended)
        .order_by(col(Visit.ended_at).desc()).limit(PAST_LIMIT)
    )).all()
    open_visits = [*by_appt.values(), *unscheduled]
    mine = {row.visit_id: row.state for row in (await db.exec(
        select(Participant).where(col(Participant.visit_id).in_([v.id for v in open_visits]),
                                  Participant.user_id == actor.user_id)
    )).all()} if open_visits else {}
    names = await practitioner_names(
        db, [a.practitioner_id for a in appts] + [v.practitioner_id for v in (*unscheduled, *past)])

    def ref(practitioner_id: int) -> PractitionerRef:
        return PractitionerRef(id=practitioner_id, name=practitioner_name(names, practitioner_id))

    upcoming: list[UpcomingVisitOut] = []
    for a in appts:
        visit = by_appt.get(a.id)
        if visit is not None and visit.status == VisitStatus.ended:
            continue
        opens, closes = _appointment_window(a)
        upcoming.append(UpcomingVisitOut(
            appointment_id=a.id, visit_id=visit.id if visit else None, start=a.start, end=a.end,
            practitioner=ref(a.practitioner_id), reason=a.reason, joinable_from=opens,
            joinable=opens <= now <= closes, state=mine.get(visit.id) if visit else None,
        ))
    for v in unscheduled:
        upcoming.append(UpcomingVisitOut(
            appointment_id=None, visit_id=v.id, start=v.created_at, end=None,
            practitioner=ref(v.practitioner_id), reason=v.reason, joinable_from=v.created_at,
            joinable=True, state=mine.get(v.id),
        ))
    past_out = await _past(db, past, ref)
    await _audit(db, actor, "visit.list")
    await db.commit()
    return VisitsOut(upcoming=upcoming, past=past_out,
                     consent=ConsentOut(version=CONSENT_VERSION, text=CONSENT_TEXT),
                     join_early_minutes=int(JOIN_EARLY.total_seconds() // 60))


async def _past(db: AsyncSession, visits: Sequence[Visit],
                ref: Callable[[int], PractitionerRef]) -> list[PastVisitOut]:
    if not visits:
        return []
    rows = (await db.exec(select(Participant).where(
        col(Participant.visit_id).in_([v.id for v in visits]),
        col(Participant.admitted_at).is_not(None)))).all()
    order = {ParticipantRole.patient: 0, ParticipantRole.provider: 1}
    counts = await visitchat.message_counts(db, [v.id for v in visits if v.id is not None])
    out = []
    for v in visits:
        taking_part = sorted((r for r in rows if r.visit_id == v.id),
                             key=lambda r: (order.get(r.role, 2), r.id or 0))
        names = await participant_names(db, v, taking_part)
        out.append(PastVisitOut(
            visit_id=v.id or 0, practitioner=ref(v.practitioner_id),
            scheduled_start=v.scheduled_start, started_at=v.started_at, ended_at=v.ended_at,
            participants=[names[r.id] for r in taking_part if r.id is not None],
            message_count=counts.get(v.id or 0, 0),
        ))
    return out


async def get_visit(db: AsyncSession, actor: Actor, visit_id: int) -> VisitOut:
    visit, role = await visit_role(db, actor, visit_id, "visit.read")
    out = await _visit_out(db, actor, visit, role)
    await _audit(db, actor, "visit.read", visit=visit)
    await db.commit()
    return out


async def _visit_out(db: AsyncSession, actor: Actor, visit: Visit, role: str) -> VisitOut:
    rows = (await db.exec(select(Participant).where(Participant.visit_id == visit.id)
                          .order_by(col(Participant.id)))).all()
    names = await participant_names(db, visit, rows)
    mine = next((r for r in rows if r.user_id == actor.user_id), None)
    # A guest sees nothing of the record: not the reason, not the patient's full name.
    guest = role == ParticipantRole.guest
    mine_id = mine.id if mine else None
    patient_row = next((r for r in rows if r.role == ParticipantRole.patient), None)
    patient_name = (names.get(patient_row.id, "") if patient_row and patient_row.id else "")
    if not patient_name:
        patient = await db.get(Patient, visit.patient_id)
        patient_name = patient.display_name if patient else "Patient"
    provider = practitioner_name(await practitioner_names(db, [visit.practitioner_id]),
                                 visit.practitioner_id)
    return VisitOut(
        id=visit.id or 0, status=visit.status,
        practitioner=PractitionerRef(id=visit.practitioner_id, name=provider),
        patient_name="" if guest else patient_name,
        scheduled_start=visit.scheduled_start, scheduled_end=visit.scheduled_end,
        started_at=visit.started_at, ended_at=visit.ended_at,
        reason=None if guest else visit.reason, my_role=role,
        my_participant_id=mine.id if mine else None, my_state=mine.state if mine else None,
        participants=[
            ParticipantOut(id=r.id or 0, role=r.role, state=r.state,
                           name=shown_to(role, r.role, names[r.id or 0]))
            for r in rows if not guest or r.state != ParticipantState.waiting or r.id == mine_id
        ],
    )


# --- check-in ----------------------------------------------------------------------

async def _visit_for_appointment(db: AsyncSession, actor: Actor, appointment_id: int,
                                 now: datetime) -> Visit:
    appt = await db.get(Appointment, appointment_id)
    actor.require(
        appt is not None and appt.patient_id == actor.patient_id
        and appt.kind == VisitKind.video.value and appt.status not in RELEASED_APPOINTMENT_STATUSES,
        action="visit.check_in", resource=f"appointment:{appointment_id}",
        patient_id=actor.patient_id, error=NotFound())
    assert appt is not None
    visit = (await db.exec(select(Visit).where(Visit.appointment_id == appointment_id))).first()
    if visit is not None:
        return visit
    visit = Visit(patient_id=appt.patient_id, practitioner_id=appt.practitioner_id,
                  appointment_id=appt.id, scheduled_start=appt.start, scheduled_end=appt.end,
                  reason=appt.reason, created_by=actor.user_id, created_at=now)
    db.add(visit)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:  # made by a check-in from another tab a moment ago
        visit = (await db.exec(select(Visit).where(Visit.appointment_id == appointment_id))).one()
    return visit


async def check_in(db: AsyncSession, actor: Actor, body: CheckInIn, now: datetime) -> Visit:
    """Put the patient in their provider's waiting room (idempotent: checking in
    again while waiting or admitted updates the reason and consent and keeps
    the place; after leaving, it re-enters the queue)."""
    actor.require(actor.is_patient and actor.patient_id is not None, action="visit.check_in")
    if body.appointment_id is not None:
        visit = await _visit_for_appointment(db, actor, body.appointment_id, now)
    else:
        visit, _ = await visit_role(db, actor, body.visit_id or 0, "visit.check_in")
    if visit.status == VisitStatus.ended:
        raise Conflict("This visit has ended.", code="visit_ended")
    opens, closes = join_window(visit)
    if opens is not None and now < opens:
        raise Conflict(f"You can check in from {JOIN_EARLY.seconds // 60} minutes before your "
                       "visit starts.", code="too_early")
    if closes is not None and now > closes:
        raise Conflict("The time for this visit has passed. Please call the clinic.", code="too_late")
    if body.consent_version != CONSENT_VERSION:
        raise InvalidInput("consent_version", "Please read and accept the current consent.")
    if body.pharmacy_id is not None:
        await _check_pharmacy(db, body.pharmacy_id)
    visit.reason = body.reason
    visit.pharmacy_id = body.pharmacy_id if body.pharmacy_id is not None else visit.pharmacy_id
    row = (await db.exec(select(Participant).where(
        Participant.visit_id == visit.id, Participant.user_id == actor.user_id))).first()
    if row is None:
        row = Participant(visit_id=visit.id or 0, user_id=actor.user_id,
                          role=ParticipantRole.patient, state=ParticipantState.waiting,
                          checked_in_at=now, ticket=await _next_ticket(db, visit, now))
        db.add(row)
    elif row.state == ParticipantState.left:
        row.state = ParticipantState.waiting
        row.checked_in_at = now
        row.left_at = None
    row.consent_version = body.consent_version
    row.consent_at = now
    try:
        await db.flush()
    except IntegrityError:
        raise Conflict("You are already checked in from another window.", code="conflict") from None
    events.participant_changed(db, visit_id=visit.id or 0, practitioner_id=visit.practitioner_id,
                               participant_id=row.id or 0, state=row.state)
    await _audit(db, actor, "visit.check_in", visit=visit)
    await db.commit()
    return visit


async def _check_pharmacy(db: AsyncSession, pharmacy_id: int) -> None:
    from rtc_server.pharmacy.models import Pharmacy

    pharmacy = await db.get(Pharmacy, pharmacy_id)
    if pharmacy is None or not pharmacy.active:
        raise InvalidInput("pharmacy_id", "Choose a pharmacy from the list.")


async def _next_ticket(db: AsyncSession, visit: Visit, now: datetime) -> int:
    """The next number for today's waiting room of this provider (displays show
    numbers, never names). Two check-ins at the same instant may share one;
    the number is only for people to recognise their turn."""
    since = now - timedelta(hours=12)
    highest = (await db.exec(
        select(func.max(Participant.ticket)).join(Visit, col(Visit.id) == col(Participant.visit_id))
        .where(Visit.practitioner_id == visit.practitioner_id,
               col(Participant.checked_in_at) >= since)
    )).first()
    return (highest or 0) + 1


# --- the provider's side -------------------------------------------------------------

async def hosted(db: AsyncSession, actor: Actor, visit_id: int, action: str) -> Visit:
    """The visit, if the caller is its provider (others: 404 or 403, audited;
    another provider's visit answers 404 as if it did not exist)."""
    visit, role = await visit_role(db, actor, visit_id, action)
    actor.require(role == ParticipantRole.provider, action=action, resource=f"visit:{visit_id}")
    return visit


async def ensure_host(db: AsyncSession, actor: Actor, visit: Visit, now: datetime) -> Participant:
    """The provider's own participant row, admitted (made on first use)."""
    row = (await db.exec(select(Participant).where(
        Participant.visit_id == visit.id, Participant.user_id == actor.user_id))).first()
    if row is None:
        row = Participant(visit_id=visit.id or 0, user_id=actor.user_id,
                          role=ParticipantRole.provider, state=ParticipantState.admitted,
                          admitted_at=now, admitted_by=actor.user_id)
        db.add(row)
        await db.flush()
    elif row.state != ParticipantState.admitted:
        row.state = ParticipantState.admitted
        row.admitted_at = now
        row.left_at = None
        await db.flush()
    return row


async def admit(db: AsyncSession, actor: Actor, visit_id: int, participant_id: int,
                now: datetime) -> Participant:
    """Admit one waiting participant into the call room (see the module rules)."""
    visit = await hosted(db, actor, visit_id, "visit.admit")
    row = await db.get(Participant, participant_id)
    if row is None or row.visit_id != visit.id:
        raise NotFound()
    decision = decide_admit(visit_ended=visit.status == VisitStatus.ended, state=row.state)
    full = MAX_PARTICIPANTS - 1  # the provider always has a place
    if decision == AdmitDecision.admit and await _admitted_others(db, visit, participant_id) >= full:
        raise Conflict(f"A video visit has room for {MAX_PARTICIPANTS} people.", code="visit_full")
    if decision == AdmitDecision.admit:
        # A guest reads the chat from here on (by sequence, the order the chat's writer commits in).
        chat_from = await visitchat.last_seq(db, visit.id or 0) if row.role == ParticipantRole.guest else None
        done = await db.exec(update(Participant.__table__).where(  # type: ignore[call-overload]
            _P.id == participant_id, _P.visit_id == visit.id, _P.state == ParticipantState.waiting,
        ).values(state=ParticipantState.admitted, admitted_at=now, admitted_by=actor.user_id,
                 left_at=None, chat_from_seq=chat_from))
        if done.rowcount != 1:
            decision = AdmitDecision.already_admitted
    if decision != AdmitDecision.admit:
        await db.rollback()
        raise _admit_refusal(decision)
    await ensure_host(db, actor, visit, now)
    await db.exec(update(Visit.__table__).where(  # type: ignore[call-overload]
        _V.id == visit.id, _V.started_at.is_(None)).values(started_at=now))
    events.participant_changed(db, visit_id=visit.id or 0, practitioner_id=visit.practitioner_id,
                               participant_id=participant_id, state=ParticipantState.admitted)
    events.admitted(db, visit_id=visit.id or 0, user_id=row.user_id)
    await _audit(db, actor, "visit.admit", visit=visit)
    await db.commit()
    await db.refresh(row)
    return row


async def _admitted_others(db: AsyncSession, visit: Visit, participant_id: int) -> int:
    """Admitted people in the visit besides ``participant_id`` and its provider
    (who always has a place)."""
    return int((await db.exec(select(func.count()).select_from(Participant).where(
        Participant.visit_id == visit.id, Participant.state == ParticipantState.admitted,
        Participant.role != ParticipantRole.provider, Participant.id != participant_id))).one())


def _admit_refusal(decision: AdmitDecision) -> Conflict:
    messages = {
        AdmitDecision.already_admitted: "This person has already been admitted.",
        AdmitDecision.not_waiting: "This person is no longer waiting.",
        AdmitDecision.visit_ended: "This visit has ended.",
    }
    return Conflict(messages[decision], code=str(decision))


async def send_note(db: AsyncSession, actor: Actor, visit_id: int, participant_id: int, text: str,
                    now: datetime) -> None:
    """A short note to a waiting participant; it shows on their page at once."""
    visit = await hosted(db, actor, visit_id, "visit.note")
    row = await db.get(Participant, participant_id)
    if row is None or row.visit_id != visit.id:
        raise NotFound()
    row.note = text
    row.note_at = now
    events.note_sent(db, visit_id=visit.id or 0, participant_id=participant_id)
    events.queue_changed(db, visit.practitioner_id)
    await _audit(db, actor, "visit.note", visit=visit)
    await db.commit()


async def require_ice(db: AsyncSession, actor: Actor, visit_id: int) -> None:
    """May the caller have ICE servers (TURN credentials) for this visit? Its
    patient and provider, yes; a guest only while admitted (409 ``not_admitted``)."""
    visit, role = await visit_role(db, actor, visit_id, "visit.ice")
    if role == ParticipantRole.guest:
        state = (await db.exec(select(Participant.state).where(
            Participant.visit_id == visit.id, Participant.user_id == actor.user_id))).first()
        actor.require(state == ParticipantState.admitted, action="visit.ice",
                      resource=f"visit:{visit_id}",
                      error=Conflict("You have not been admitted to this visit yet.",
                                     code="not_admitted"))


async def leave(db: AsyncSession, actor: Actor, visit_id: int, now: datetime) -> None:
    """Leave the waiting room or the call (the visit stays open for the others)."""
    visit, _ = await visit_role(db, actor, visit_id, "visit.leave")
    row = (await db.exec(select(Participant).where(
        Participant.visit_id == visit.id, Participant.user_id == actor.user_id))).first()
    if row is None or row.state == ParticipantState.left:
        return
    row.state = ParticipantState.left
    row.left_at = now
    row.peer_id = None
    events.participant_changed(db, visit_id=visit.id or 0, practitioner_id=visit.practitioner_id,
                               participant_id=row.id or 0, state=ParticipantState.left)
    await _audit(db, actor, "visit.leave", visit=visit)
    await db.commit()


async def end(db: AsyncSession, actor: Actor, visit_id: int, now: datetime) -> Visit:
    """The provider ends the visit for everyone (idempotent)."""
    visit = await hosted(db, actor, visit_id, "visit.end")
    done = await db.exec(update(Visit.__table__).where(  # type: ignore[call-overload]
        _V.id == visit.id, _V.status == VisitStatus.open,
    ).values(status=VisitStatus.ended, ended_at=now, ended_by=actor.user_id))
    if done.rowcount == 1:
        await db.exec(update(Participant.__table__).where(  # type: ignore[call-overload]
            _P.visit_id == visit.id, _P.state != ParticipantState.left,
        ).values(state=ParticipantState.left, left_at=now, peer_id=None))
        events.ended(db, visit_id=visit.id or 0, practitioner_id=visit.practitioner_id)
        await _audit(db, actor, "visit.end", visit=visit)
    await db.commit()
    await db.refresh(visit)
    return visit


async def start_unscheduled(db: AsyncSession, actor: Actor, patient_id: int, reason: str | None,
                            now: datetime, *, settings: Settings | None = None,
                            page_open: Callable[[int], bool] = lambda user_id: True) -> Visit:
    """A provider starts a visit now with a patient of theirs (in their care
    team, the rule the console's patient search marks ``care_team``); the
    patient's pages are told and the patient checks in as for any visit.
    With ``settings``, a patient with no page open (``page_open(user id)``)
    is also mailed, if their reminder preferences allow email: the mail says
    their provider is waiting and links to Virtual Visits, nothing more."""
    practitioner_id = await own_practitioner(db, actor, "visit.start")
    theirs = (await db.exec(select(Patient.id).where(
        Patient.id == patient_id, care_team_clause(practitioner_id, col(Patient.id))))).first() is not None
    actor.require(theirs, action="visit.start", resource=f"patient:{patient_id}",
                  patient_id=patient_id, error=NotFound())
    account = (await db.exec(select(User.id).where(User.patient_id == patient_id))).first()
    if account is None:
        raise Conflict("This patient has no portal account, so they cannot join a video visit.",
                       code="no_account")
    visit = Visit(patient_id=patient_id, practitioner_id=practitioner_id, reason=reason,
                  created_by=actor.user_id, created_at=now)
    db.add(visit)
    await db.flush()
    await ensure_host(db, actor, visit, now)
    events.started(db, visit_id=visit.id or 0, user_id=account)
    if settings is not None and not page_open(account):
        await _mail_started(db, account, settings)
    await _audit(db, actor, "visit.start", visit=visit)
    await db.commit()
    return visit


async def _mail_started(db: AsyncSession, user_id: int, settings: Settings) -> None:
    user = await db.get(User, user_id)
    if user is None or not user.email or not notifications_of(user)["appointment_reminders"]["email"]:
        return
    clinic = settings.clinic_name
    queue_mail(db, compose(
        "visit_started", user.email, f"{clinic}: your provider is waiting for you", clinic,
        user.display_name or None,
        ["Your provider has started a video visit with you and is waiting for you to join.",
         "Log in to the patient portal and open Virtual Visits to join."],
        ("Open Virtual Visits", f"{settings.base_url.rstrip('/')}/app/visits.html"),
    ))


# --- device check results ---------------------------------------------------------------

async def record_device_check(db: AsyncSession, actor: Actor, body: DeviceCheckIn,
                              now: datetime) -> None:
    """Keep the caller's latest device check, so staff see who is ready."""
    actor.require(actor.role in (Role.patient, Role.provider), action="visit.device_check")
    db.add(DeviceCheck(user_id=actor.user_id, outcome=body.outcome, rtt_ms=body.rtt_ms,
                       loss_percent=body.loss_percent, bitrate_kbps=body.bitrate_kbps,
                       checked_at=now))
    await _audit(db, actor, "visit.device_check")
    await db.commit()
