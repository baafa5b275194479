"""A provider starts a video visit at once from the console's waiting room: they find
one of their patients, give a reason, and land in the visit room. The patient's open
Virtual Visits tab shows the visit without a reload; they join, check in, the provider
admits them from the visit room, and both see the other's video."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.async_api import expect

from tests.browser.axe import assert_accessible
from tests.browser.test_visit_flow import coturn, page_for, wait_for_frames  # noqa: F401 (fixture)
from tests.harness import server_db
from tests.media.visit_helpers import make_clinic, person, use_ice

pytestmark = pytest.mark.browser


async def test_provider_starts_a_visit_now_and_the_patient_joins_from_their_visits_tab(
    browser, coturn, monkeypatch, live_server, secrets_seen  # noqa: F811
) -> None:
    use_ice(monkeypatch, coturn.ice(relay_only=True), live_server.app)
    async with server_db(live_server) as factory:
        # The appointment is days away: this visit is not from it.
        clinic = await make_clinic(factory, live_server.settings, starts_in=timedelta(days=3),
                                   secrets_seen=secrets_seen)
        # Someone else's patient with the same family name is not offered.
        await person(factory, live_server.settings, "other.lopez", given="Olga", family="Lopez",
                     secrets_seen=secrets_seen)
    patient_ctx, patient = await page_for(browser, live_server, clinic.patient)
    provider_ctx, provider = await page_for(browser, live_server, clinic.provider)
    try:
        await patient.goto(f"{live_server.url}/app/visits.html")
        await expect(patient.locator("#upcoming-list > li")).to_have_count(1)

        await provider.goto(f"{live_server.url}/console/waiting-room.html")
        start = provider.locator("#start-visit")
        await expect(start).to_be_visible()
        await provider.get_by_label("Find your patient (name or MRN)").fill("Lopez")
        await provider.keyboard.press("Enter")
        await expect(provider.locator("#find-result")).to_contain_text("1 of your patients matches.")
        choice = provider.get_by_role("radio", name="Maria Lopez")
        await expect(choice).to_be_checked()
        await expect(provider.get_by_role("radio", name="Olga Lopez")).to_have_count(0)
        await provider.get_by_label("Reason for the visit (optional)").fill("Lab results follow-up")
        await assert_accessible(provider, phone=True)
        await provider.get_by_role("button", name="Start the video visit").click()
        await expect(provider.locator("#call")).to_be_visible()
        assert "/visit.html?visit=" in provider.url

        # The patient's tab shows it live, and they join.
        started = patient.locator("#upcoming-list > li").filter(
            has_text="Your provider started a video visit")
        await expect(started).to_have_count(1)
        await started.get_by_role("link", name="Join video visit").click()
        await expect(patient.locator("#checkin")).to_be_visible()
        await expect(patient.locator("#reason")).to_have_value("Lab results follow-up")
        await patient.get_by_label("I have read this and agree to a virtual visit.").check()
        await patient.get_by_role("button", name="Check in").click()
        await expect(patient.locator("#waiting-place")).to_have_text("You are next in line.")

        # The provider, already in the visit room, admits them there.
        await provider.get_by_role("button", name="Admit Maria Lopez").click()
        await expect(patient.locator("#call")).to_be_visible()
        await wait_for_frames(patient, 20)
        await wait_for_frames(provider, 20)
        await expect(provider.locator(".tile--remote figcaption")).to_contain_text("Maria Lopez")
        assert patient.errors == [] and provider.errors == []  # type: ignore[attr-defined]
    finally:
        await patient_ctx.close()
        await provider_ctx.close()
