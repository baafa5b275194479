"""A provider starts a visit now: a patient with no page open is mailed (no health
data: not the reason, not the provider's name), unless they turned reminder mail off."""

from __future__ import annotations

from rtc_server.auth.models import User
from tests.media.visit_helpers import api_client, make_clinic


async def test_a_patient_with_no_page_open_is_mailed_that_their_provider_waits(
    app, session_factory, settings, smtp, drain_mail
) -> None:
    clinic = await make_clinic(session_factory, settings)
    async with api_client(app, clinic.provider) as provider:
        r = await provider.post("/api/v1/visits", json={"patient_id": clinic.patient.patient_id,
                                                        "reason": "Abnormal potassium result"})
        assert r.status_code == 201
    await drain_mail()
    [mail] = smtp.to(f"{clinic.patient.username}@example.org")
    text = smtp.text(mail)
    assert "waiting for you" in text and f"{settings.base_url}/app/visits.html" in text
    for private in ("potassium", "Reyes"):  # greeted by their own name, as every mail is
        assert private not in text and private not in mail["Subject"]


async def test_no_mail_when_the_patient_turned_reminder_mail_off(
    app, session_factory, settings, smtp, drain_mail
) -> None:
    clinic = await make_clinic(session_factory, settings)
    async with session_factory() as db:
        user = await db.get(User, clinic.patient.user_id)
        assert user is not None
        user.notification_prefs = {"appointment_reminders": {"email": False, "sms": False}}
        db.add(user)
        await db.commit()
    async with api_client(app, clinic.provider) as provider:
        r = await provider.post("/api/v1/visits", json={"patient_id": clinic.patient.patient_id})
        assert r.status_code == 201
    await drain_mail()
    assert smtp.to(f"{clinic.patient.username}@example.org") == []
