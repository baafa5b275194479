"""A waiting-room display: paired with a code from the console, it shows the queue by
ticket number (no names), calls "now being seen", rides out a network loss, and
returns to its pairing form when staff unpair it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.async_api import expect

from rtc_server.auth.models import Role
from tests.browser.axe import assert_accessible
from tests.harness import server_db
from tests.media.visit_helpers import check_in_body, http_client, make_clinic, person

pytestmark = pytest.mark.browser


async def test_a_lobby_screen_shows_tickets_recovers_from_network_loss_and_can_be_unpaired(
    browser_page, live_server, secrets_seen
) -> None:
    page = browser_page
    async with server_db(live_server) as factory:
        clinic = await make_clinic(factory, live_server.settings, starts_in=timedelta(minutes=5),
                                   secrets_seen=secrets_seen)
        staff = await person(factory, live_server.settings, "front.desk", role=Role.staff,
                             secrets_seen=secrets_seen)
    async with http_client(live_server.url, staff) as desk, \
            http_client(live_server.url, clinic.patient) as patient, \
            http_client(live_server.url, clinic.provider) as provider:
        added = (await desk.post("/api/v1/displays", json={
            "name": "Lobby TV", "practitioner_id": clinic.practitioner_id})).json()

        await page.goto(f"{live_server.url}/display.html")
        await page.get_by_label("Display code").fill(added["code"])
        await page.get_by_role("button", name="Pair this screen").click()
        await expect(page.locator("h1")).to_have_text("Lobby TV")
        await expect(page.locator("#waiting-empty")).to_be_visible()
        await assert_accessible(page)

        visit_id = (await patient.post("/api/v1/visits/check-in",
                                       json=check_in_body(clinic.appointment_id))).json()["visit_id"]
        await expect(page.locator("#waiting li")).to_have_text(["Ticket 1"])
        assert "Maria" not in await page.locator("body").inner_text()

        # The screen loses its network; meanwhile the patient is called in.
        await page.context.set_offline(True)
        await expect(page.locator("#display-status")).to_have_text("Reconnecting…", timeout=15_000)
        [w] = (await provider.get("/api/v1/visits/waiting-room")).json()["waiting"]
        await provider.post(f"/api/v1/visits/{visit_id}/admit", json={"participant_id": w["participant_id"]})
        await page.context.set_offline(False)
        await expect(page.locator("#now-seeing li")).to_have_text(["Ticket 1"], timeout=30_000)
        await expect(page.locator("#waiting-empty")).to_be_visible()
        await expect(page.locator("#display-status")).to_have_text("")

        await desk.post(f"/api/v1/displays/{added['id']}/revoke")
        await expect(page.locator("#pairing")).to_be_visible(timeout=15_000)
        await expect(page.locator("#display-status")).to_contain_text("unpaired")
        assert await page.evaluate("localStorage.getItem('rtc:display-token')") is None
