"""The Virtual Visits tab: upcoming video visits with Join from 15 minutes before
(later ones say when), a visit the provider starts appears without a reload, past
visits list who took part. Accessible at desktop and phone sizes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from tests.browser.axe import assert_accessible
from tests.harness import server_db
from tests.media.visit_helpers import (
    admit_over_http,
    http_client,
    make_clinic,
    video_appointment,
)

pytestmark = pytest.mark.browser


async def test_patient_sees_when_each_video_visit_can_be_joined_and_a_started_one_appears_live(
    browser_page, live_server, secrets_seen
) -> None:
    page = browser_page
    async with server_db(live_server) as factory:
        clinic = await make_clinic(factory, live_server.settings, starts_in=timedelta(minutes=10),
                                   secrets_seen=secrets_seen)
        await video_appointment(factory, clinic.patient, clinic.practitioner_id,
                                start=datetime.now(UTC) + timedelta(days=2), reason="Annual review")
    past_visit, _ = await admit_over_http(live_server.url, clinic)
    async with http_client(live_server.url, clinic.provider) as provider:
        assert (await provider.post(f"/api/v1/visits/{past_visit}/end")).status_code == 200
        await page.context.add_cookies([{"name": "rtc_session", "value": clinic.patient.token,
                                         "url": live_server.url}])
        await page.goto(f"{live_server.url}/app/visits.html")
        items = page.locator("#upcoming-list > li")
        await expect(items).to_have_count(1)  # the first appointment's visit has ended
        await expect(items.first).to_contain_text("Annual review")
        await expect(items.first).to_contain_text("You can join from")
        await expect(items.first.get_by_role("link", name="Test camera and microphone")).to_be_visible()
        past = page.locator("#past-list > li")
        await expect(past).to_have_count(1)
        await expect(past.first).to_contain_text("Took part: Maria Lopez, Dr. Ana Reyes, MD")
        await assert_accessible(page, phone=True)

        # The provider starts a visit now: it shows up at once, ready to join.
        r = await provider.post("/api/v1/visits", json={"patient_id": clinic.patient.patient_id})
        assert r.status_code == 201
        started = items.filter(has_text="Your provider started a video visit")
        await expect(started).to_have_count(1)
        join = started.get_by_role("link", name="Join video visit")
        await expect(join).to_have_attribute("href", f"/visit.html?visit={r.json()['id']}")
    assert page.console_errors == []  # type: ignore[attr-defined]
