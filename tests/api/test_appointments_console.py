"""The console side of appointments: a provider publishes weekly hours (visit
length, in person or video per block, breaks, days off) and patients see open
times from them at once; staff edit any provider's hours and see bookings and
cancellations, which are announced after commit (ids only) to the patient, the
provider and the staff channel."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import select

from rtc_server.auth.models import Role, User
from rtc_server.broker.base import Inbox
from rtc_server.notify.events import user_channel
from rtc_server.portal.appointments.availability import AvailabilityRules, grid_for_day
from rtc_server.portal.appointments.events import STAFF_CHANNEL
from tests.api.test_appointments import (
    add_practitioner,
    at,
    audit_rows,
    book,
    days_ahead,
    iso,
    make_clinic,
    patient,
    signed_in,
)

NY = ZoneInfo("America/New_York")
WEEKDAY_HOURS = {
    "visit_minutes": 20,
    "weekly": [
        {"weekday": d, "start": "09:00", "end": "12:00", "kinds": ["in_person", "video"]} for d in range(5)
    ] + [{"weekday": 4, "start": "13:00", "end": "15:00", "kinds": ["video"]}],
    "breaks": [{"weekday": None, "start": "10:30", "end": "10:50"}],
}


async def provider_for(
    app: Any, session_factory: Any, practitioner_id: int | None, username: str = "dr.marsh"
) -> Any:
    client = await signed_in(app, session_factory, username, role=Role.provider)
    async with session_factory() as db:
        user = (await db.exec(select(User).where(User.username == username))).one()
        user.practitioner_id = practitioner_id
        db.add(user)
        await db.commit()
    return client


def next_weekday(weekday: int, weeks: int = 1) -> date:
    today = datetime.now(NY).date() + timedelta(days=7 * weeks)
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def local(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=NY).astimezone(UTC)


async def open_on(client, practitioner_id: int, day: date, **extra: Any) -> list[str]:
    r = await client.get("/api/v1/appointments/open-times", params={
        "practitioner_id": practitioner_id, "start": iso(local(day, "00:00")), "days": 1, **extra})
    assert r.status_code == 200, r.text
    return [at(t["start"]).astimezone(NY).strftime("%H:%M") for t in r.json()["times"]]


async def test_provider_publishes_hours_and_patients_see_open_times_at_once(app, session_factory) -> None:
    doctor = await add_practitioner(session_factory, "Elena", "Marsh")
    dr = await provider_for(app, session_factory, doctor)
    maria = await patient(app, session_factory, "maria.lopez")
    assert (await maria.client.get("/api/v1/appointments/providers")).json() == []

    friday = next_weekday(4)
    monday = next_weekday(0)
    r = await dr.put("/api/v1/console/availability", json={**WEEKDAY_HOURS, "days_off": [monday.isoformat()]})
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["practitioner"]["id"] == doctor and shown["rules"]["time_zone"] == "America/New_York"
    assert shown["rules"]["visit_minutes"] == 20 and shown["open_next_two_weeks"] > 0
    assert (await dr.get("/api/v1/console/availability")).json()["rules"] == shown["rules"]

    # 9:00-12:00 in 20-minute visits, the grid starting again after the 10:30-10:50 break.
    morning = ["09:00", "09:20", "09:40", "10:00", "10:50", "11:10", "11:30"]
    assert await open_on(maria.client, doctor, friday) == [*morning, "13:00", "13:20", "13:40",
                                                             "14:00", "14:20", "14:40"]
    assert await open_on(maria.client, doctor, friday, kind="in_person") == morning
    assert await open_on(maria.client, doctor, monday) == []  # a day off
    assert await open_on(maria.client, doctor, next_weekday(5)) == []  # no Saturday hours
    providers = (await maria.client.get("/api/v1/appointments/providers")).json()
    assert [(p["id"], p["kinds"]) for p in providers] == [(doctor, ["in_person", "video"])]

    # In-person only on Friday afternoon is refused: that block offers video.
    r = await book(maria.client, doctor, local(friday, "13:00"), kind="in_person")
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "kind"
    assert (await book(maria.client, doctor, local(friday, "13:00"), kind="video")).status_code == 201

    # New hours apply at once; the booking made under the old ones stays.
    r = await dr.put("/api/v1/console/availability", json={
        "visit_minutes": 30,
        "weekly": [{"weekday": 4, "start": "14:00", "end": "16:00", "kinds": ["video"]}]})
    assert r.status_code == 200
    assert await open_on(maria.client, doctor, friday) == ["14:00", "14:30", "15:00", "15:30"]
    mine = (await maria.client.get("/api/v1/appointments")).json()["upcoming"]
    assert [at(a["start"]) for a in mine] == [local(friday, "13:00")]
    assert [e.outcome for e in await audit_rows(session_factory, "availability.update")] == ["success"] * 2


async def test_bad_hours_are_refused_naming_the_field(app, session_factory) -> None:
    doctor = await add_practitioner(session_factory, "Elena", "Marsh")
    dr = await provider_for(app, session_factory, doctor)
    cases = [
        ({"visit_minutes": 30, "weekly": [{"weekday": 1, "start": "12:00", "end": "09:00",
                                           "kinds": ["video"]}]}, "weekly.0"),
        ({"visit_minutes": 30, "weekly": [{"weekday": 1, "start": "9:00", "end": "12:00",
                                           "kinds": ["video"]}]}, "weekly.0.start"),
        ({"visit_minutes": 30, "weekly": [{"weekday": 1, "start": "09:00", "end": "12:00", "kinds": []}]},
         "weekly.0.kinds"),
        ({"visit_minutes": 5, "weekly": []}, "visit_minutes"),
        ({"visit_minutes": 30, "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"visit_minutes": 30, "weekly": [
            {"weekday": 2, "start": "09:00", "end": "12:00", "kinds": ["video"]},
            {"weekday": 2, "start": "11:00", "end": "13:00", "kinds": ["video"]}]}, "weekly"),
    ]
    for body, field in cases:
        r = await dr.put("/api/v1/console/availability", json=body)
        assert r.status_code == 422, (body, r.text)
        fields = [f["field"] for f in r.json()["error"]["fields"]]
        assert any(f == field or f.startswith(field) for f in fields), (field, fields)
    assert (await dr.get("/api/v1/console/availability")).json()["rules"] is None


async def test_only_the_provider_or_staff_edit_hours_and_refusals_are_audited(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    dr = await provider_for(app, session_factory, clinic.doctor_id)
    unlinked = await provider_for(app, session_factory, None, "dr.unlinked")
    maria = await patient(app, session_factory, "maria.lopez")
    admin = await signed_in(app, session_factory, "site.admin", role=Role.admin)
    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    hours = {"visit_minutes": 30, "weekly": []}

    r = await dr.put("/api/v1/console/availability", json={**hours, "practitioner_id": clinic.other_id})
    assert r.status_code == 403
    r = await unlinked.get("/api/v1/console/availability")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_linked"
    for who in (maria.client, admin):
        assert (await who.put("/api/v1/console/availability", json=hours)).status_code == 403
        assert (await who.get("/api/v1/console/appointments")).status_code == 403
    refused = await audit_rows(session_factory, "availability.update")
    assert [(e.outcome, e.actor_role) for e in refused] == [
        ("denied", "provider"), ("denied", "patient"), ("denied", "admin")]

    # Staff choose the provider; without one the request names the field.
    r = await staff.put("/api/v1/console/availability", json=hours)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "practitioner_id"
    r = await staff.put("/api/v1/console/availability", json={**hours, "practitioner_id": clinic.other_id})
    assert r.status_code == 200 and r.json()["practitioner"]["id"] == clinic.other_id
    listed = (await staff.get("/api/v1/console/practitioners")).json()
    assert {p["id"] for p in listed} == {clinic.doctor_id, clinic.other_id}
    assert [p["id"] for p in (await dr.get("/api/v1/console/practitioners")).json()] == [clinic.doctor_id]


async def test_staff_see_bookings_and_cancellations_and_everyone_concerned_is_told(
    app, session_factory
) -> None:
    clinic = await make_clinic(session_factory)
    dr = await provider_for(app, session_factory, clinic.doctor_id)
    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    maria = await patient(app, session_factory, "maria.lopez")
    async with session_factory() as db:
        users = {u.username: u.id for u in (await db.exec(select(User))).all()}
    inbox = Inbox()
    channels = [user_channel(users["maria.lopez"]), user_channel(users["dr.marsh"]),
                user_channel(users["front.desk"]), STAFF_CHANNEL]
    sub = await app.state.broker.subscribe(channels, inbox.put)
    try:
        appt = (await book(maria.client, clinic.doctor_id, days_ahead(3), reason="Knee pain")).json()
        got = [await asyncio.wait_for(inbox.get(), 5) for _ in range(3)]
        assert sorted(ch for ch, _ in got) == sorted([channels[0], channels[1], STAFF_CHANNEL])
        assert all(event == {"kind": "appointment", "id": appt["id"], "change": "booked"} for _, event in got)

        schedule = (await staff.get("/api/v1/console/appointments")).json()
        # The front desk sees who comes when, not why (the reason is health data) ...
        assert [(b["id"], b["patient_name"], b["reason"], b["status"]) for b in schedule] == [
            (appt["id"], "Maria Lopez", None, "booked")]
        # ... the provider does.
        assert [(b["id"], b["reason"]) for b in (await dr.get("/api/v1/console/appointments")).json()] == [
            (appt["id"], "Knee pain")]

        await maria.client.post(f"/api/v1/appointments/{appt['id']}/cancel")
        got = [await asyncio.wait_for(inbox.get(), 5) for _ in range(3)]
        assert {event["change"] for _, event in got} == {"cancelled"}
        schedule = (await staff.get("/api/v1/console/appointments")).json()
        assert [(b["id"], b["status"]) for b in schedule] == [(appt["id"], "cancelled")]
        assert inbox.queue.empty()  # nothing for staff members' own channels; nothing twice
    finally:
        await sub.close()
    rows = await audit_rows(session_factory, "appointment.schedule")
    # Each view names the patient it showed, so her access history lists it.
    assert len(rows) == 3 and {r.patient_id for r in rows} == {maria.patient_id}


async def test_a_refused_booking_announces_nothing(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    james = await patient(app, session_factory, "james.chen", given="James", family="Chen")
    start = days_ahead(3)
    assert (await book(maria.client, clinic.doctor_id, start)).status_code == 201
    inbox = Inbox()
    sub = await app.state.broker.subscribe([STAFF_CHANNEL], inbox.put)
    try:
        assert (await book(james.client, clinic.doctor_id, start)).status_code == 409
        r = await james.client.post("/api/v1/appointments/999999/cancel")
        assert r.status_code == 404
        assert inbox.queue.empty()
    finally:
        await sub.close()


def test_the_grid_keeps_wall_clock_hours_across_daylight_saving_changes() -> None:
    rules = AvailabilityRules(visit_minutes=60, time_zone="America/New_York", weekly=[
        {"weekday": 6, "start": "01:00", "end": "04:00", "kinds": ["video"]}])
    # 2026-03-08: clocks go from 2:00 to 3:00 (2:00-2:59 does not exist); 2026-11-01: 1:00-1:59 twice.
    spring = [t.start.astimezone(NY).strftime("%H:%M") for t in grid_for_day(rules, date(2026, 3, 8))]
    autumn = grid_for_day(rules, date(2026, 11, 1))
    assert spring == ["01:00", "03:00"]
    assert [t.start.astimezone(NY).strftime("%H:%M") for t in autumn] == ["01:00", "02:00", "03:00"]
    assert all(t.end - t.start == timedelta(hours=1) for t in autumn)
