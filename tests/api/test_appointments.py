"""Appointments tab: a patient books an open time, reschedules, cancels; the
clinic's cut-off; another patient's appointment looks absent (and the attempt
is audited); Idempotency-Key replays and conflicts.

The helpers at the top are shared by the other ``test_appointments_*`` modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlmodel import col, select

from rtc_server.audit import AuditEvent
from rtc_server.auth.models import Role
from rtc_server.auth.sessions import session_cookie_name
from rtc_server.console.availability import publish_hours
from rtc_server.portal.appointments.availability import AvailabilityRules, HoursBlock
from rtc_server.records.models import Appointment, Practitioner, Slot
from tests.harness import create_patient, create_signed_in_user, csrf_client

# --- a small clinic -------------------------------------------------------------------

ZONE = "America/New_York"
ALWAYS_OPEN = AvailabilityRules(
    visit_minutes=30, time_zone=ZONE,
    weekly=[HoursBlock(weekday=d, start="00:00", end="24:00", kinds=["in_person", "video"])
            for d in range(7)],
)


@dataclass
class Clinic:
    doctor_id: int  # published hours: every half hour, every day
    other_id: int  # no hours of their own


async def add_practitioner(session_factory: Any, given: str, family: str) -> int:
    async with session_factory() as db:
        p = Practitioner(prefix="Dr.", given_name=given, family_name=family, suffix="MD",
                         specialty="Family Medicine")
        db.add(p)
        await db.commit()
        assert p.id is not None
        return p.id


async def publish(session_factory: Any, practitioner_id: int, rules: AvailabilityRules = ALWAYS_OPEN) -> None:
    async with session_factory() as db:
        await publish_hours(db, practitioner_id, rules, updated_by=None, now=datetime.now(UTC))
        await db.commit()


async def make_clinic(session_factory: Any) -> Clinic:
    doctor = await add_practitioner(session_factory, "Elena", "Marsh")
    other = await add_practitioner(session_factory, "Samuel", "Okafor")
    await publish(session_factory, doctor)
    return Clinic(doctor, other)


async def signed_in(app: Any, session_factory: Any, username: str, **fields: Any) -> httpx.AsyncClient:
    """A client with a full session of a new account (``create_user``'s keywords)."""
    settings = app.state.settings
    token = await create_signed_in_user(session_factory, settings, username, **fields)
    client = await csrf_client(app)
    client.cookies.set(session_cookie_name(settings), token)
    return client


@dataclass
class PatientClient:
    client: httpx.AsyncClient
    patient_id: int


async def patient(app: Any, session_factory: Any, username: str, **record: Any) -> PatientClient:
    patient_id = await create_patient(session_factory, **record)
    client = await signed_in(app, session_factory, username, patient_id=patient_id)
    return PatientClient(client, patient_id)


def half_hour_after(moment: datetime) -> datetime:
    """The first :00 or :30 strictly after ``moment`` (a time on ALWAYS_OPEN's grid)."""
    base = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return base + timedelta(minutes=30 - base.minute % 30)


def days_ahead(days: float) -> datetime:
    return half_hour_after(datetime.now(UTC) + timedelta(days=days))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def open_starts(client: httpx.AsyncClient, practitioner_id: int, start: datetime, days: int = 1,
                      **extra: Any) -> list[datetime]:
    r = await client.get("/api/v1/appointments/open-times", params={
        "practitioner_id": practitioner_id, "start": iso(start), "days": days, **extra})
    assert r.status_code == 200, r.text
    return [at(t["start"]) for t in r.json()["times"]]


async def book(client: httpx.AsyncClient, practitioner_id: int, start: datetime, *,
               kind: str = "in_person", reason: str = "Follow-up on blood pressure",
               key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post("/api/v1/appointments", headers=headers, json={
        "practitioner_id": practitioner_id, "start": iso(start), "kind": kind, "reason": reason})


async def audit_rows(session_factory: Any, action: str) -> list[AuditEvent]:
    async with session_factory() as db:
        return list((await db.exec(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(col(AuditEvent.id)))).all())


async def held(session_factory: Any, practitioner_id: int) -> list[Appointment]:
    async with session_factory() as db:
        return list((await db.exec(select(Appointment).where(
            Appointment.practitioner_id == practitioner_id, Appointment.status == "booked"))).all())


# --- booking -----------------------------------------------------------------------------

async def test_patient_books_an_open_time_and_sees_it_upcoming(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")

    providers = (await maria.client.get("/api/v1/appointments/providers")).json()
    assert [p["name"] for p in providers] == ["Dr. Elena Marsh, MD"]  # only providers with open times
    assert providers[0]["kinds"] == ["in_person", "video"]

    start = days_ahead(3)
    assert start in await open_starts(maria.client, clinic.doctor_id, start)
    r = await book(maria.client, clinic.doctor_id, start, kind="video")
    assert r.status_code == 201, r.text
    booked = r.json()
    assert at(booked["start"]) == start and at(booked["end"]) == start + timedelta(minutes=30)
    assert booked["status"] == "booked" and booked["kind"] == "video"
    assert booked["reason"] == "Follow-up on blood pressure"
    assert booked["practitioner"] == {"id": clinic.doctor_id, "name": "Dr. Elena Marsh, MD"}
    assert booked["can_change"] is True
    assert at(booked["changeable_until"]) == start - timedelta(hours=24)

    mine = (await maria.client.get("/api/v1/appointments")).json()
    assert [a["id"] for a in mine["upcoming"]] == [booked["id"]] and mine["past"] == []
    assert mine["clinic"]["time_zone"] == "America/New_York"
    assert mine["clinic"]["cancel_cutoff_hours"] == 24
    # The time is no longer open to anyone, and the slot row holds it.
    assert start not in await open_starts(maria.client, clinic.doctor_id, start)
    async with session_factory() as db:
        slot = (await db.exec(select(Slot).where(Slot.practitioner_id == clinic.doctor_id))).one()
    assert slot.status == "busy" and slot.start == start

    # The doctor they booked with is now on their care team.
    providers = (await maria.client.get("/api/v1/appointments/providers")).json()
    assert providers[0]["care_team"] is True
    book_audit = await audit_rows(session_factory, "appointment.book")
    assert [(e.outcome, e.patient_id, e.resource) for e in book_audit] == [
        ("success", maria.patient_id, f"appointment:{booked['id']}")]
    for action in ("appointment.list", "appointment.providers", "appointment.open_times"):
        assert await audit_rows(session_factory, action), action


async def test_a_time_one_patient_holds_is_refused_to_the_next(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    james = await patient(app, session_factory, "james.chen", given="James", family="Chen")
    start = days_ahead(2)
    assert (await book(maria.client, clinic.doctor_id, start)).status_code == 201

    r = await book(james.client, clinic.doctor_id, start)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "slot_taken"
    assert r.json()["error"]["message"].startswith("That time was just taken")
    conflicts = await audit_rows(session_factory, "appointment.book")
    assert [e.outcome for e in conflicts] == ["success", "conflict"]


async def test_times_outside_the_hours_or_the_booking_window_cannot_be_booked(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    off_grid = days_ahead(2) + timedelta(minutes=10)
    r = await book(maria.client, clinic.doctor_id, off_grid)
    assert r.status_code == 409 and r.json()["error"]["code"] == "time_unavailable"
    r = await book(maria.client, clinic.other_id, days_ahead(2))  # no hours published
    assert r.status_code == 409 and r.json()["error"]["code"] == "time_unavailable"
    r = await book(maria.client, clinic.doctor_id, half_hour_after(datetime.now(UTC)))
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "start"
    r = await book(maria.client, clinic.doctor_id, days_ahead(7 * 9))
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "start"
    r = await book(maria.client, clinic.doctor_id, days_ahead(2), reason="  ")
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "reason"
    async with session_factory() as db:
        assert (await db.exec(select(Appointment))).all() == []


async def test_an_imported_slot_is_bookable_and_published_hours_never_overlap_it(
    app, session_factory
) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    start = days_ahead(4)
    async with session_factory() as db:  # as the FHIR import stores a 45-minute Slot
        slot = Slot(practitioner_id=clinic.doctor_id, start=start, end=start + timedelta(minutes=45))
        db.add(slot)
        await db.commit()
    open_now = await open_starts(maria.client, clinic.doctor_id, start - timedelta(hours=1))
    # The imported slot is open; the published half hours that overlap it are not.
    assert start in open_now and start + timedelta(minutes=30) not in open_now
    assert start + timedelta(minutes=60) in open_now
    r = await book(maria.client, clinic.doctor_id, start)
    assert r.status_code == 201
    assert at(r.json()["end"]) == start + timedelta(minutes=45)
    assert r.json()["id"] and slot.id is not None
    async with session_factory() as db:
        row = await db.get(Appointment, r.json()["id"])
        assert row is not None and row.slot_id == slot.id


# --- rescheduling and cancelling ---------------------------------------------------------

async def test_patient_reschedules_and_the_old_time_opens_again(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    first, second = days_ahead(3), days_ahead(5)
    old = (await book(maria.client, clinic.doctor_id, first)).json()

    r = await maria.client.post(f"/api/v1/appointments/{old['id']}/reschedule",
                                json={"start": iso(second), "kind": "video"})
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["id"] != old["id"] and at(new["start"]) == second
    assert new["kind"] == "video" and new["reason"] == old["reason"]
    mine = (await maria.client.get("/api/v1/appointments")).json()
    assert [a["id"] for a in mine["upcoming"]] == [new["id"]]
    moved = next(a for a in mine["past"] if a["id"] == old["id"])
    assert moved["status"] == "cancelled" and moved["replaced_by_id"] == new["id"]
    assert first in await open_starts(maria.client, clinic.doctor_id, first)
    assert [a.id for a in await held(session_factory, clinic.doctor_id)] == [new["id"]]


async def test_rescheduling_to_a_taken_time_keeps_the_old_appointment(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    james = await patient(app, session_factory, "james.chen", given="James", family="Chen")
    mine, theirs = days_ahead(3), days_ahead(4)
    old = (await book(maria.client, clinic.doctor_id, mine)).json()
    assert (await book(james.client, clinic.doctor_id, theirs)).status_code == 201

    r = await maria.client.post(f"/api/v1/appointments/{old['id']}/reschedule", json={"start": iso(theirs)})
    assert r.status_code == 409 and r.json()["error"]["code"] == "slot_taken"
    still = (await maria.client.get(f"/api/v1/appointments/{old['id']}")).json()
    assert still["status"] == "booked" and at(still["start"]) == mine
    assert len(await held(session_factory, clinic.doctor_id)) == 2


async def test_patient_cancels_and_the_time_opens_again(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    start = days_ahead(3)
    appt = (await book(maria.client, clinic.doctor_id, start)).json()

    r = await maria.client.post(f"/api/v1/appointments/{appt['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled" and r.json()["cancelled_at"]
    assert start in await open_starts(maria.client, clinic.doctor_id, start)
    mine = (await maria.client.get("/api/v1/appointments")).json()
    assert mine["upcoming"] == [] and mine["past"][0]["id"] == appt["id"]
    again = await maria.client.post(f"/api/v1/appointments/{appt['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_upcoming"
    # Someone else can have the time now.
    james = await patient(app, session_factory, "james.chen", given="James", family="Chen")
    assert (await book(james.client, clinic.doctor_id, start)).status_code == 201


async def test_inside_the_cutoff_changes_are_refused_with_a_call_the_clinic_answer(
    app, session_factory
) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    soon = half_hour_after(datetime.now(UTC) + timedelta(hours=3))
    appt = (await book(maria.client, clinic.doctor_id, soon)).json()
    assert appt["can_change"] is False

    r = await maria.client.post(f"/api/v1/appointments/{appt['id']}/cancel")
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "inside_cutoff"
    assert "within 24 hours" in error["message"] and "call the clinic" in error["message"]
    r = await maria.client.post(f"/api/v1/appointments/{appt['id']}/reschedule",
                                json={"start": iso(days_ahead(3))})
    assert r.status_code == 409 and r.json()["error"]["code"] == "inside_cutoff"
    assert (await maria.client.get(f"/api/v1/appointments/{appt['id']}")).json()["status"] == "booked"
    refusals = await audit_rows(session_factory, "appointment.cancel")
    assert [(e.outcome, e.resource) for e in refusals] == [("refused", f"appointment:{appt['id']}")]


# --- who may see what ----------------------------------------------------------------------

async def test_another_patients_appointment_is_not_found_and_each_attempt_is_audited(
    app, session_factory
) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    james = await patient(app, session_factory, "james.chen", given="James", family="Chen")
    appt = (await book(maria.client, clinic.doctor_id, days_ahead(3))).json()
    missing = appt["id"] + 1000

    for path, method, body in (
        ("", "GET", None), ("/cancel", "POST", None), ("/reschedule", "POST", {"start": iso(days_ahead(5))}),
    ):
        theirs = await james.client.request(method, f"/api/v1/appointments/{appt['id']}{path}", json=body)
        absent = await james.client.request(method, f"/api/v1/appointments/{missing}{path}", json=body)
        assert theirs.status_code == absent.status_code == 404, (path, theirs.text)
        assert theirs.json()["error"]["code"] == absent.json()["error"]["code"] == "not_found"
        assert theirs.json()["error"]["message"] == absent.json()["error"]["message"]

    async with session_factory() as db:
        denied = (await db.exec(select(AuditEvent).where(
            AuditEvent.outcome == "denied", AuditEvent.resource == f"appointment:{appt['id']}"))).all()
        james_user = (await db.exec(select(AuditEvent.actor_id).where(
            AuditEvent.action == "appointment.list"))).all()
    assert sorted(e.action for e in denied) == [
        "appointment.cancel", "appointment.read", "appointment.reschedule"]
    assert all(e.patient_id == james.patient_id and e.actor_role == "patient" for e in denied)
    assert james_user == []  # nothing else was read on his behalf
    # And Maria's appointment is untouched.
    assert (await maria.client.get(f"/api/v1/appointments/{appt['id']}")).json()["status"] == "booked"
    assert "Follow-up" not in (await james.client.get("/api/v1/appointments")).text


async def test_only_patients_use_the_patient_appointments_api(app, session_factory) -> None:
    await make_clinic(session_factory)
    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    for method, path in (("GET", "/api/v1/appointments"), ("GET", "/api/v1/appointments/providers")):
        r = await staff.request(method, path)
        assert r.status_code == 403, path
    anonymous = await csrf_client(app)
    assert (await anonymous.get("/api/v1/appointments")).status_code == 401
    denied = await audit_rows(session_factory, "appointment.list")
    assert [(e.outcome, e.actor_role) for e in denied] == [("denied", "staff")]
    await anonymous.aclose()


# --- Idempotency-Key ---------------------------------------------------------------------------

async def test_a_retried_booking_with_the_same_key_returns_the_first_result(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    start = days_ahead(3)
    first = await book(maria.client, clinic.doctor_id, start, key="book-7f3a")
    retry = await book(maria.client, clinic.doctor_id, start, key="book-7f3a")
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert len(await held(session_factory, clinic.doctor_id)) == 1
    # Without the key the same request is a new booking attempt, and the time is taken.
    assert (await book(maria.client, clinic.doctor_id, start)).status_code == 409


async def test_the_same_key_with_a_different_request_is_refused(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    assert (await book(maria.client, clinic.doctor_id, days_ahead(3), key="k-1")).status_code == 201
    r = await book(maria.client, clinic.doctor_id, days_ahead(4), key="k-1")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reused"
    assert r.json()["error"]["fields"][0]["field"] == "Idempotency-Key"
    assert len(await held(session_factory, clinic.doctor_id)) == 1
    bad = await book(maria.client, clinic.doctor_id, days_ahead(4), key="has space")
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "Idempotency-Key"
    # Keys are per person: another patient's identical key is theirs alone.
    james = await patient(app, session_factory, "james.chen", given="James", family="Chen")
    assert (await book(james.client, clinic.doctor_id, days_ahead(4), key="k-1")).status_code == 201


async def test_concurrent_retries_with_one_key_book_once(app, session_factory) -> None:
    import asyncio

    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    start = days_ahead(3)
    answers = await asyncio.gather(*(book(maria.client, clinic.doctor_id, start, key="double-click")
                                     for _ in range(5)))
    assert [r.status_code for r in answers] == [201] * 5
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(await held(session_factory, clinic.doctor_id)) == 1


async def test_a_retried_reschedule_returns_the_first_result(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    old = (await book(maria.client, clinic.doctor_id, days_ahead(3))).json()
    body = {"start": iso(days_ahead(6))}
    path = f"/api/v1/appointments/{old['id']}/reschedule"
    first = await maria.client.post(path, json=body, headers={"Idempotency-Key": "move-1"})
    retry = await maria.client.post(path, json=body, headers={"Idempotency-Key": "move-1"})
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    other = await maria.client.post(path, json={"start": iso(days_ahead(7))},
                                    headers={"Idempotency-Key": "move-1"})
    assert other.status_code == 422
    assert [a.id for a in await held(session_factory, clinic.doctor_id)] == [first.json()["id"]]
