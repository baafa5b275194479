"""A video visit in two headless Chromium pages with fake cameras and microphones:
the patient checks in, waits, the provider admits them from the console's waiting
room, and both pages show the other's video playing (frames decoded, read from
getStats by the page's quality indicator). Then the patient's page loses its network
for a few seconds and the call recovers by itself.

The media goes through a TURN relay (coturn on loopback, relay-only), and the outage
takes the relay down with the page: Playwright's ``set_offline`` alone cuts the
page's HTTP requests but not its WebRTC media (Chromium keeps decoding frames and
the connection stays "connected"; checked), so on its own it would prove nothing
about recovery. With the relay gone every allocation is lost; the pages notice
(ICE consent fails), restart ICE through the signaling socket until the relay is
back, and the call carries on without anyone clicking anything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.browser.axe import assert_accessible
from tests.harness import server_db
from tests.media.turn_server import Coturn, running_coturn
from tests.media.visit_helpers import Person, make_clinic, use_ice

pytestmark = pytest.mark.browser


@pytest_asyncio.fixture(loop_scope="session")
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    async with running_coturn(tmp_path / "coturn", min_port=49300, max_port=49400) as server:
        yield server


async def page_for(browser: Any, live_server: Any, who: Person) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    await context.add_cookies([{"name": "rtc_session", "value": who.token, "url": live_server.url}])
    page = await context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.console = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.console.append(f"{m.type}: {m.text}"))  # type: ignore[attr-defined]
    return context, page


async def frames_decoded(page: Page) -> int:
    return int(await page.locator(".tile--remote").first.get_attribute("data-frames-decoded") or 0)


async def wait_for_frames(page: Page, at_least: int, timeout_ms: int = 45_000) -> None:
    """Until the remote tile says ``at_least`` frames were decoded and its video plays
    (on a timeout the failure says what the page showed)."""
    try:
        await _frames(page, at_least, timeout_ms)
    except PlaywrightTimeout:
        shown = await page.evaluate("""() => [...document.querySelectorAll('.tile--remote')].map(
            (t) => ({...t.dataset, connection: document.getElementById('call-connection').textContent,
                     status: document.getElementById('visit-status').textContent}))""")
        said = getattr(page, "console", [])[-20:]
        raise AssertionError(f"{page.url}: wanted {at_least} frames decoded; tiles: {shown}; "
                             f"console: {said}") from None


async def _frames(page: Page, at_least: int, timeout_ms: int) -> None:
    await page.wait_for_function(
        """(n) => {
            const tile = document.querySelector('.tile--remote');
            const video = tile && tile.querySelector('video');
            return tile && Number(tile.dataset.framesDecoded) >= n && video && video.videoWidth > 0
                && !video.paused;
        }""", arg=at_least, timeout=timeout_ms)


async def test_patient_and_provider_see_each_other_and_recover_from_a_network_blip(
    browser, coturn, monkeypatch, live_server, secrets_seen
) -> None:
    use_ice(monkeypatch, coturn.ice(relay_only=True), live_server.app)
    async with server_db(live_server) as factory:
        clinic = await make_clinic(factory, live_server.settings, starts_in=timedelta(minutes=5),
                                   secrets_seen=secrets_seen)
    patient_ctx, patient = await page_for(browser, live_server, clinic.patient)
    provider_ctx, provider = await page_for(browser, live_server, clinic.provider)
    try:
        # The patient checks in: devices first, then reason and consent.
        await patient.goto(f"{live_server.url}/visit.html?appointment={clinic.appointment_id}")
        await expect(patient.locator("#checkin")).to_be_visible()
        await expect(patient.locator("#reason")).to_have_value("Follow-up on cough")
        await assert_accessible(patient, phone=True)
        await patient.get_by_label("I have read this and agree to a virtual visit.").check()
        await patient.get_by_role("button", name="Check in").click()
        await expect(patient.locator("#waiting-place")).to_have_text("You are next in line.")
        await assert_accessible(patient)

        # The provider sees them arrive in the waiting room and admits them.
        await provider.goto(f"{live_server.url}/console/waiting-room.html")
        await expect(provider.locator("#waiting-list li")).to_have_count(1)
        await expect(provider.locator("#waiting-list li")).to_contain_text("Maria Lopez")
        await assert_accessible(provider, phone=True)
        await provider.get_by_role("button", name="Admit Maria Lopez").click()
        await expect(provider.locator("#call")).to_be_visible()
        await expect(patient.locator("#call")).to_be_visible()

        # Both see the other's video playing.
        await wait_for_frames(patient, 30)
        await wait_for_frames(provider, 30)
        await expect(patient.locator(".tile--remote figcaption")).to_contain_text("Dr. Ana Reyes")
        await expect(provider.locator(".tile--remote figcaption")).to_contain_text("Maria Lopez")
        await expect(patient.locator("#call-encryption")).to_contain_text("encrypted between the browsers")
        await assert_accessible(patient, phone=True)

        assert await patient.locator(".tile--remote").get_attribute("data-relayed") == "true"

        # The patient's network drops for a few seconds (and the relay with it); the call
        # notices, and comes back by itself once the network is back.
        await patient_ctx.set_offline(True)
        await coturn.stop()
        await expect(provider.locator(".tile--remote")).not_to_have_attribute(
            "data-state", "connected", timeout=20_000)
        await asyncio.sleep(3)  # the rest of the outage: there is no event to wait for
        await coturn.start()
        await patient_ctx.set_offline(False)
        for page in (provider, patient):
            await expect(page.locator(".tile--remote")).to_have_attribute("data-state", "connected",
                                                                          timeout=30_000)
            await wait_for_frames(page, await frames_decoded(page) + 60)
        assert patient.errors == [] and provider.errors == []  # type: ignore[attr-defined]
    finally:
        await patient_ctx.close()
        await provider_ctx.close()
