"""A third person joins a video visit by link: in the call, the provider creates an
invitation for an interpreter; a third Chromium page with no portal account opens the
link, joins, waits, is admitted from the visit room, and all three see each other's
video, and chat. The same link in a fourth page is refused with a clear page; after
the visit the patient's page keeps the chat with it."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser.axe import assert_accessible
from tests.browser.test_visit_flow import coturn, page_for  # noqa: F401 (fixture)
from tests.harness import server_db
from tests.media.visit_helpers import admit_over_http, make_clinic, use_ice

pytestmark = pytest.mark.browser


async def wait_for_all_tiles(page: Page, tiles: int, frames: int, timeout_ms: int = 45_000) -> None:
    """Until ``tiles`` remote tiles each decoded ``frames`` frames and play."""
    await page.wait_for_function(
        """([count, n]) => {
            const tiles = [...document.querySelectorAll('.tile--remote')];
            return tiles.length === count && tiles.every((t) => {
                const video = t.querySelector('video');
                return Number(t.dataset.framesDecoded) >= n && video && video.videoWidth > 0 && !video.paused;
            });
        }""", arg=[tiles, frames], timeout=timeout_ms)


async def test_an_interpreter_joins_by_link_and_all_three_see_each_other(
    browser, coturn, monkeypatch, live_server, secrets_seen  # noqa: F811
) -> None:
    use_ice(monkeypatch, coturn.ice(relay_only=True), live_server.app)
    async with server_db(live_server) as factory:
        clinic = await make_clinic(factory, live_server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await admit_over_http(live_server.url, clinic)
    patient_ctx, patient = await page_for(browser, live_server, clinic.patient)
    provider_ctx, provider = await page_for(browser, live_server, clinic.provider)
    guest_ctx = await browser.new_context(viewport={"width": 900, "height": 800})
    late_ctx = await browser.new_context()
    try:
        await provider.goto(f"{live_server.url}/visit.html?visit={visit_id}&join=1")
        await patient.goto(f"{live_server.url}/visit.html?visit={visit_id}")
        await wait_for_all_tiles(provider, 1, 10)

        # The provider makes the invitation in the call.
        await provider.get_by_label("Who they are (shown in the call)").fill("Interpreter")
        await provider.get_by_role("button", name="Create an invitation link").click()
        link = provider.get_by_label("Invitation link (shown only now)")
        await expect(link).to_be_visible()
        url = await link.input_value()
        assert url.startswith(f"{live_server.settings.base_url.rstrip('/')}/join.html#")
        secrets_seen.add(url.split("#", 1)[1])
        await assert_accessible(provider)
        url = url.replace(live_server.settings.base_url.rstrip("/"), live_server.url)

        # The interpreter opens it: no account, no portal tabs.
        guest = await guest_ctx.new_page()
        errors: list[str] = []
        guest.on("pageerror", lambda e: errors.append(str(e)))
        await guest.goto(url)
        await assert_accessible(guest, phone=True)
        await guest.get_by_role("button", name="Join the video visit").click()
        await expect(guest.locator("#waiting")).to_be_visible()
        await expect(guest.locator("#visit-with")).to_have_text("With Dr. Ana Reyes, MD")
        await expect(guest.locator("#portal-nav")).to_be_hidden()
        await assert_accessible(guest)

        # The same link in another browser is refused, plainly.
        late = await late_ctx.new_page()
        await late.goto(url)
        await late.get_by_role("button", name="Join the video visit").click()
        await expect(late.locator("#refused-text")).to_contain_text("already been used")
        await assert_accessible(late)

        # The provider admits them from the visit room; everyone sees everyone.
        await provider.get_by_role("button", name="Admit Interpreter").click()
        await expect(guest.locator("#call")).to_be_visible()
        for page in (provider, patient, guest):
            await wait_for_all_tiles(page, 2, 10)
        captions = await guest.locator(".tile--remote figcaption").all_text_contents()
        # A caption reads "Name (Role) Good connection"; the patient is their first name only.
        assert sorted(c.split(" ")[0] for c in captions) == ["Dr.", "Maria"]
        assert not any("Lopez" in c for c in captions)
        captions = await patient.locator(".tile--remote figcaption").all_text_contents()
        assert any(c.startswith("Interpreter") for c in captions)
        assert "Lopez" not in await guest.content()

        # They chat: a line from the interpreter reaches both others, as text.
        await guest.get_by_label("Message").fill("Hola, soy la intérprete <b>hoy</b>")
        await guest.keyboard.press("Enter")
        for page in (patient, provider, guest):
            await expect(page.locator("#chat-log li").last).to_contain_text(
                "Hola, soy la intérprete <b>hoy</b>")
            assert await page.locator("#chat-log b").count() == 0
        await expect(provider.locator("#chat-log li").last).to_contain_text("Interpreter")
        await provider.get_by_label("Message").fill("Gracias.")
        await provider.get_by_role("button", name="Send").click()
        await expect(guest.locator("#chat-log li").last).to_contain_text("Dr. Ana Reyes, MD")
        await expect(guest.locator("#chat-log li").last).to_contain_text("Gracias.")
        await assert_accessible(guest)

        # The provider ends the visit; the patient's page keeps the chat with it.
        provider.once("dialog", lambda d: d.accept())
        await provider.get_by_role("button", name="End visit for everyone").click()
        await expect(patient.locator("#ended")).to_be_visible()
        await expect(patient.locator("#ended-chat-log li")).to_have_count(2)
        await expect(guest.locator("#ended")).to_be_visible()
        # Later, under past visits, the patient opens the visit's chat again.
        await patient.goto(f"{live_server.url}/app/visits.html")
        await patient.get_by_role("link", name="Read the visit's chat (2 messages)").click()
        await expect(patient.locator("#ended-chat-log li")).to_have_count(2)
        await expect(patient.locator("#ended-chat-log li").last).to_contain_text("Gracias.")
        assert errors == []
        assert patient.errors == [] and provider.errors == []  # type: ignore[attr-defined]
    finally:
        for ctx in (patient_ctx, provider_ctx, guest_ctx, late_ctx):
            await ctx.close()
