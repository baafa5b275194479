"""Reminders: at the clinic's offsets (72 and 24 hours before), by the channels
the patient chose, sent once even with several instances claiming at the same
moment, with no health data in the email or the text; a cancelled appointment
is not reminded of."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from rtc_server.portal.appointments.reminders import ReminderWorker
from rtc_server.portal.appointments.sms import OutboxSmsSender
from tests.api.test_appointments import (
    at,
    audit_rows,
    book,
    days_ahead,
    make_clinic,
    patient,
)

INSTANCES = 3
backends = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


async def every_instance(workers: list[ReminderWorker], now) -> int:
    """All instances look for due reminders at the same moment; how many were sent in all."""
    return sum(await asyncio.gather(*(w.run_once(now=now) for w in workers)))


@backends
async def test_reminders_go_once_at_each_offset_by_the_patients_channels(app, session_factory, smtp) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    r = await maria.client.patch("/api/v1/account/contact", json={"phone": "+1 555 010 1234"})
    assert r.status_code == 200, r.text
    r = await maria.client.put("/api/v1/account/notifications",
                               json={"appointment_reminders": {"email": True, "sms": True}})
    assert r.status_code == 200, r.text
    appt = (await book(maria.client, clinic.doctor_id, days_ahead(5), reason="Chest pain follow-up")).json()
    start = at(appt["start"])

    settings = app.state.settings
    sms = OutboxSmsSender(settings.outbox_dir)
    workers = [ReminderWorker(session_factory, settings, sms=sms) for _ in range(INSTANCES)]
    assert await every_instance(workers, start - timedelta(hours=73)) == 0
    assert await every_instance(workers, start - timedelta(hours=71)) == 1
    assert await every_instance(workers, start - timedelta(hours=70)) == 0
    await app.state.deps.mail_worker.drain()
    mails = smtp.to("maria.lopez@example.org")
    texts = sms.sent()
    assert len(mails) == 1 and len(texts) == 1
    body = smtp.text(mails[0])
    assert "reminder of your appointment" in body and "/app/appointments.html" in body
    assert texts[0]["to"] == "+1 555 010 1234" and "reminder of your appointment" in texts[0]["text"]
    for leak in ("Chest", "Marsh", "video", "in person"):
        assert leak not in body and leak not in texts[0]["text"] and leak not in str(mails[0]["Subject"])

    assert await every_instance(workers, start - timedelta(hours=23)) == 1
    await app.state.deps.mail_worker.drain()
    assert len(smtp.to("maria.lopez@example.org")) == 2 and len(sms.sent()) == 2
    assert await every_instance(workers, start - timedelta(hours=1)) == 0
    sent = await audit_rows(session_factory, "appointment.reminder")
    assert [(e.outcome, e.resource, e.actor_id) for e in sent] == [
        ("sent", f"appointment:{appt['id']}", None)] * 2


async def test_a_cancelled_or_moved_appointment_is_not_reminded_of(app, session_factory, smtp) -> None:
    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")  # email only: the default
    cancelled = (await book(maria.client, clinic.doctor_id, days_ahead(5))).json()
    moved = (await book(maria.client, clinic.doctor_id, days_ahead(6))).json()
    assert (await maria.client.post(f"/api/v1/appointments/{cancelled['id']}/cancel")).status_code == 200
    r = await maria.client.post(f"/api/v1/appointments/{moved['id']}/reschedule",
                                json={"start": days_ahead(10).isoformat()})
    assert r.status_code == 200
    new_start = at(r.json()["start"])
    settings = app.state.settings
    sms = OutboxSmsSender(settings.outbox_dir)
    worker = ReminderWorker(session_factory, settings, sms=sms)
    assert await worker.run_once(now=at(moved["start"]) - timedelta(hours=23)) == 0
    assert await worker.run_once(now=new_start - timedelta(hours=71)) == 1
    await app.state.deps.mail_worker.drain()
    assert len(smtp.to("maria.lopez@example.org")) == 1 and sms.sent() == []


async def test_a_reminder_names_the_time_in_the_zone_the_patient_chose(app, session_factory, smtp) -> None:
    from zoneinfo import ZoneInfo

    from rtc_server.portal.appointments.reminders import when_text

    clinic = await make_clinic(session_factory)
    maria = await patient(app, session_factory, "maria.lopez")
    r = await maria.client.put("/api/v1/account/time-zone", json={"time_zone": "America/Los_Angeles"})
    assert r.status_code == 200, r.text
    appt = (await book(maria.client, clinic.doctor_id, days_ahead(5))).json()
    start = at(appt["start"])
    settings = app.state.settings
    worker = ReminderWorker(session_factory, settings, sms=OutboxSmsSender(settings.outbox_dir))
    assert await worker.run_once(now=start - timedelta(hours=71)) == 1
    await app.state.deps.mail_worker.drain()
    body = smtp.text(smtp.to("maria.lopez@example.org")[-1])
    pacific = start.astimezone(ZoneInfo("America/Los_Angeles")).tzname()
    assert pacific in ("PST", "PDT") and when_text(start, "America/Los_Angeles") in body
    assert when_text(start, settings.clinic_timezone) not in body
