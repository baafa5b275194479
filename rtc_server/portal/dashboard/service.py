"""The Dashboard, built by one request: the next appointments, new lab results
(released and not yet opened), unread conversations with the care team (when
secure messaging is part of the build), open refill requests (likewise), and
what needs the patient's attention.

It is the page patients open most, so it reads everything in one statement of
narrow rows (no ORM objects; see ``_page_query``): the next appointments with
their providers' names, the unopened results, the unread conversations, the open
refill requests; then one audit row, committed by the instance's audit writer
(``audit.record_read``). Held results never appear: results are read through
``lab_release`` with ``state = 'released'`` like every other patient view. The
dashboard does not classify new results itself (``labs.release.triage``): the
import path does (``triage_imported``, which also notifies), and so do the
record and lab reads; a result nobody has classified yet is simply not shown.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Float, Integer, String, bindparam, cast, func, literal, null, union_all
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.audit_writer import WRITER_INFO
from rtc_server.auth.actor import Actor
from rtc_server.db import SessionFactory, as_utc, utcnow
from rtc_server.portal.dashboard.shapes import (
    Action,
    DashAppointment,
    DashboardOut,
    DashResult,
    Section,
)
from rtc_server.portal.labs.flags import flag_of
from rtc_server.portal.labs.models import LabRelease, LabState
from rtc_server.portal.records.access import own_patient
from rtc_server.readpool import READ_POOL_INFO, ReadPool
from rtc_server.records.models import (
    RELEASED_APPOINTMENT_STATUSES,
    Appointment,
    Observation,
    Practitioner,
)

try:  # secure messaging (rtc_server.chat) may not be part of this build
    from rtc_server.chat.models import Conversation, Member
except ImportError:  # pragma: no cover
    Conversation = Member = None  # type: ignore[assignment,misc]
try:  # nor prescription refills
    from rtc_server.portal.refills.models import OPEN_STATUSES, RefillRequest
except ImportError:  # pragma: no cover
    RefillRequest = None  # type: ignore[assignment,misc]
    OPEN_STATUSES = ()

APPOINTMENTS_SHOWN = 3
CONVERSATIONS_SHOWN = 5
RESULTS_SHOWN = 10
REFILLS_SHOWN = 10
SOON = timedelta(hours=48)

# --- one read for the whole page ----------------------------------------------------------
#
# Each part of the page is a SELECT of the same columns (``_row``): which part it is,
# the row's id, two times, six texts, three numbers and the part's total (a window
# over the part's rows, taken before its LIMIT). UNION ALL makes them one statement:
# every statement costs a round trip to the database (on SQLite, through aiosqlite's
# thread), and this is the page patients open most.

_TIME = DateTime(timezone=True)


def _row(part: str, id_: Any, total: Any, *, t1: Any = None, t2: Any = None,
         s: Sequence[Any] = (), n: Sequence[Any] = ()) -> list[Any]:
    texts = [*s, *([None] * (6 - len(s)))]
    numbers = [*n, *([None] * (3 - len(n)))]
    return [
        literal(part, String).label("part"), id_.label("id"),
        (t1 if t1 is not None else cast(null(), _TIME)).label("t1"),
        (t2 if t2 is not None else cast(null(), _TIME)).label("t2"),
        *((v if v is not None else cast(null(), String)).label(f"s{i}") for i, v in enumerate(texts, 1)),
        *((v if v is not None else cast(null(), Float)).label(f"n{i}") for i, v in enumerate(numbers, 1)),
        total.label("total"),
    ]


def _fixed(values: Any) -> list[Any]:
    """A constant IN list as plain bound values: an expanding IN parameter would
    be re-rendered into the SQL on every execution."""
    return [literal(str(getattr(v, "value", v)), String) for v in values]


_PAGE_PARAMETERS = ("patient_id", "user_id", "now")


@functools.cache
def _page_query() -> Any:
    """The statement, built once: its parameters are ``patient_id``, ``user_id`` and
    ``now``. (Building it per request cost more CPU than running it.)"""
    patient_id = bindparam("patient_id", type_=Integer)
    user_id = bindparam("user_id", type_=Integer)
    now = bindparam("now", type_=_TIME)
    parts = [
        select(*_row(
            "appointment", col(Appointment.id), func.count().over(), t1=col(Appointment.start),
            t2=col(Appointment.end),
            s=[col(Appointment.kind), col(Appointment.status), col(Practitioner.prefix),
               col(Practitioner.given_name), col(Practitioner.family_name), col(Practitioner.suffix)]))
        .join(Practitioner, col(Practitioner.id) == col(Appointment.practitioner_id))
        .where(col(Appointment.patient_id) == patient_id,
               col(Appointment.status).not_in(_fixed(RELEASED_APPOINTMENT_STATUSES)),
               col(Appointment.end) > now)
        .order_by(col(Appointment.start)).limit(APPOINTMENTS_SHOWN),
        select(*_row(
            "result", col(Observation.id), func.count().over(), t1=col(Observation.effective_at),
            t2=col(LabRelease.released_at),
            s=[col(Observation.display), col(Observation.code), col(Observation.interpretation_code),
               col(LabRelease.note)],
            n=[col(Observation.value_quantity), col(Observation.reference_low),
               col(Observation.reference_high)]))
        .join(LabRelease, col(LabRelease.observation_id) == col(Observation.id))
        .where(col(LabRelease.patient_id) == patient_id, col(LabRelease.state) == LabState.released.value,
               col(LabRelease.opened_at).is_(None), col(LabRelease.announced).is_(True))
        .order_by(col(LabRelease.released_at).desc(), col(Observation.id).desc()).limit(RESULTS_SHOWN),
    ]
    if Conversation is not None:
        read = func.coalesce(Member.last_read_seq, 0)
        unread = col(Conversation.last_seq) - read
        parts.append(
            select(*_row("conversation", col(Conversation.id), func.sum(unread).over(),
                         t1=col(Conversation.last_message_at), s=[col(Conversation.subject)], n=[unread]))
            .outerjoin(Member, (col(Member.conversation_id) == col(Conversation.id))
                       & (col(Member.user_id) == user_id))
            .where(col(Conversation.patient_id) == patient_id, col(Conversation.last_seq) > read,
                   col(Conversation.visit_id).is_(None),  # a visit's chat is in no inbox
                   func.coalesce(Member.archived, False).is_(False))
            .order_by(col(Conversation.last_message_at).desc()).limit(CONVERSATIONS_SHOWN))
    if RefillRequest is not None:
        parts.append(
            select(*_row("refill", col(RefillRequest.id), func.count().over(),
                         t1=col(RefillRequest.requested_at),
                         s=[col(RefillRequest.medication_name), col(RefillRequest.status)]))
            .where(col(RefillRequest.patient_id) == patient_id,
                   col(RefillRequest.status).in_(_fixed(OPEN_STATUSES)))
            .order_by(col(RefillRequest.requested_at).desc()).limit(REFILLS_SHOWN))
    # A LIMIT inside a UNION member needs its own sub-select on SQLite.
    subs = [part.subquery() for part in parts]
    return union_all(*(select(*sub.c) for sub in subs))


class _Flagged:
    """A result row as ``flag_of`` reads it."""

    __slots__ = ("interpretation_code", "reference_high", "reference_low", "value_quantity")

    def __init__(self, row: Any) -> None:
        self.interpretation_code, self.value_quantity = row.s3, row.n1
        self.reference_low, self.reference_high = row.n2, row.n3


async def dashboard(db: AsyncSession, actor: Actor, *, now: datetime) -> DashboardOut:
    patient_id = own_patient(actor, "dashboard.read")
    # Core on the session's connection: plain rows need none of the ORM's execution path.
    conn = await db.connection()
    rows = (await conn.execute(_page_query(), {"patient_id": patient_id, "user_id": actor.user_id,
                                               "now": now})).all()
    out = _page(rows, now)
    # A read: its audit row goes through the instance's group-commit writer.
    await audit.record_read(db, **_audit_values(actor, patient_id))
    return out


async def dashboard_read(factory: SessionFactory, actor: Actor, *, now: datetime) -> DashboardOut:
    """``dashboard`` without an ORM session (the page patients open most): the one
    statement on the instance's ``ReadPool`` (SQLite) or a pooled connection, then
    the audit row through the instance's group-commit writer, committed before
    this returns. ``factory`` is the app's session factory (engine, pool, writer)."""
    info = factory.kw.get("info") or {}
    writer = info.get(WRITER_INFO)
    if writer is None or not writer.running:
        async with factory() as db:
            return await dashboard(db, actor, now=now)
    patient_id = own_patient(actor, "dashboard.read")
    params = {"patient_id": patient_id, "user_id": actor.user_id, "now": now}
    pool: ReadPool | None = info.get(READ_POOL_INFO)
    if pool is not None:
        rows = await pool.all(pool.prepare(_page_query(), _PAGE_PARAMETERS), params)
    else:
        engine: AsyncEngine = factory.kw["bind"]
        async with engine.connect() as conn:
            rows = (await conn.execute(_page_query(), params)).all()
    out = _page(rows, now)
    # The row exactly as ``audit.record_read`` hands it to the writer.
    await writer.write({"at": utcnow(), "outcome": "success", **_audit_values(actor, patient_id)})
    return out


def _audit_values(actor: Actor, patient_id: int) -> dict[str, Any]:
    return {"action": "dashboard.read", "actor_id": actor.user_id, "actor_role": str(actor.role),
            "patient_id": patient_id, "resource": f"patient:{patient_id}",
            "request_id": actor.meta.request_id, "ip": actor.meta.ip}


def _page(rows: Sequence[Any], now: datetime) -> DashboardOut:
    part: dict[str, list[Any]] = {"appointment": [], "result": [], "conversation": [], "refill": []}
    for row in rows:
        part[row.part].append(row)
    appointments = sorted((
        DashAppointment(id=a.id, start=as_utc(a.t1), end=as_utc(a.t2), kind=a.s1, status=a.s2,  # type: ignore[arg-type]
                        practitioner=_name(a.s3, a.s4, a.s5, a.s6))
        for a in part["appointment"]), key=lambda a: a.start)
    results = sorted(part["result"], key=lambda r: (as_utc(r.t2) or now, r.id), reverse=True)
    new_results = [
        DashResult(id=r.id, display=r.s1 or r.s2 or "Lab result", effective_at=as_utc(r.t1),
                   released_at=as_utc(r.t2), flag=flag_of(_Flagged(r)), note=bool(r.s4))
        for r in results
    ]
    new_count = int(results[0].total) if results else 0
    conversations = sorted(part["conversation"], key=lambda c: as_utc(c.t1) or now, reverse=True)
    messages = Section(available=Conversation is not None, items=[
        {"id": c.id, "subject": c.s1, "unread": int(c.n1), "last_message_at": as_utc(c.t1)}
        for c in conversations], unread=int(conversations[0].total) if conversations else 0)
    refills = Section(available=RefillRequest is not None, items=[
        {"id": r.id, "medication": r.s1, "status": r.s2, "requested_at": as_utc(r.t1)}
        for r in sorted(part["refill"], key=lambda r: as_utc(r.t1) or now, reverse=True)])
    return DashboardOut(
        appointments=appointments,
        upcoming_count=int(part["appointment"][0].total) if part["appointment"] else 0,
        new_results=new_results, messages=messages, refills=refills,
        actions=_actions(new_count, messages.unread, appointments, now), generated_at=now,
    )


def _name(prefix: str | None, given: str, family: str, suffix: str | None) -> str:
    name = " ".join(p for p in (prefix, given, family) if p)
    return f"{name}, {suffix}" if suffix else name or "Your provider"


def _actions(new_results: int, unread: int, appointments: list[DashAppointment],
             now: datetime) -> list[Action]:
    actions: list[Action] = []
    if unread:
        noun = "message" if unread == 1 else "messages"
        actions.append(Action(kind="unread_messages", text=f"You have {unread} unread {noun}.",
                              href="/app/messages.html"))
    if new_results:
        noun = "result" if new_results == 1 else "results"
        actions.append(Action(kind="new_results", text=f"You have {new_results} new test {noun} to read.",
                              href="/app/records.html#labs"))
    for a in appointments:
        if a.start - now <= SOON:
            text = ("Your video visit is coming up soon." if a.kind == "video"
                    else "Your appointment is coming up soon.")
            actions.append(Action(kind="appointment_soon", text=text, href="/app/appointments.html",
                                  at=a.start))
    return actions
