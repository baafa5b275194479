"""aiortc as one peer of a visit and Chromium (the patient's visit page, fake camera)
as the other, through the server's signaling: each receives the other's video."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from playwright.async_api import expect

from tests.harness import server_db
from tests.media.aiortc_peer import AiortcPeer
from tests.media.visit_helpers import admit_over_http, make_clinic

pytestmark = pytest.mark.browser


async def test_aiortc_and_chromium_exchange_video_through_the_servers_signaling(
    browser, live_server, secrets_seen
) -> None:
    async with server_db(live_server) as factory:
        clinic = await make_clinic(factory, live_server.settings, starts_in=timedelta(minutes=5),
                                   secrets_seen=secrets_seen)
    visit_id, _ = await admit_over_http(live_server.url, clinic)
    base_ws = live_server.url.replace("http://", "ws://")
    context = await browser.new_context()
    try:
        async with AiortcPeer(base_ws, clinic.provider.token, origin=live_server.url) as doctor:
            joined = await doctor.join(visit_id)
            assert joined["ice_servers"] == [] and joined["ice_transport_policy"] == "all"

            await context.add_cookies([{"name": "rtc_session", "value": clinic.patient.token,
                                        "url": live_server.url}])
            page = await context.new_page()
            await page.goto(f"{live_server.url}/visit.html?visit={visit_id}")
            await expect(page.locator("#call")).to_be_visible()

            await asyncio.wait_for(doctor.enough.wait(), 30)  # aiortc decoded 30 of Chromium's frames
            assert doctor.frames >= 30
            await page.wait_for_function(
                "() => Number(document.querySelector('.tile--remote')?.dataset.framesDecoded) >= 30",
                timeout=30_000)
            await expect(page.locator(".tile--remote figcaption")).to_contain_text("Dr. Ana Reyes")
    finally:
        await context.close()
