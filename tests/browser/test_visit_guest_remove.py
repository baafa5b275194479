"""The provider manages a visit's guests from the visit page (review finding 3): an
invitation not yet used is revoked with the keyboard (its link then says it was
withdrawn), and an admitted guest is removed from the visit (their page says so
and their link cannot bring them back). Names are the provider's labels, shown
as text."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.axe import assert_accessible
from tests.browser.test_visit_flow import page_for
from tests.harness import server_db
from tests.media.visit_helpers import admit_over_http, make_clinic

pytestmark = pytest.mark.browser


async def test_the_provider_revokes_an_invitation_and_removes_a_guest(
    browser, live_server, secrets_seen
) -> None:
    async with server_db(live_server) as factory:
        clinic = await make_clinic(factory, live_server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await admit_over_http(live_server.url, clinic)
    provider_ctx, provider = await page_for(browser, live_server, clinic.provider)
    guest_ctx = await browser.new_context()
    late_ctx = await browser.new_context()
    base = live_server.settings.base_url.rstrip("/")

    async def invitation(label: str) -> str:
        await provider.get_by_label("Who they are (shown in the call)").fill(label)
        await provider.get_by_role("button", name="Create an invitation link").click()
        link = provider.get_by_label("Invitation link (shown only now)")
        await expect(provider.locator("#invite-result")).to_contain_text(label)
        url = await link.input_value()
        secrets_seen.add(url.split("#", 1)[1])
        return url.replace(base, live_server.url)

    try:
        await provider.goto(f"{live_server.url}/visit.html?visit={visit_id}&join=1")
        await expect(provider.locator("#invite-panel")).to_be_visible()

        # A label with markup in it stays text.
        son = await invitation("Son <i>Luis</i>")
        item = provider.locator("#guests-list li", has_text="invitation not used yet")
        await expect(item).to_contain_text("Son <i>Luis</i>")
        assert await provider.locator("#guests-list i").count() == 0
        revoke = provider.get_by_role("button", name="Revoke the invitation for Son <i>Luis</i>")
        await revoke.focus()
        await provider.keyboard.press("Enter")
        await expect(provider.locator("#guests-panel")).to_be_hidden()
        await assert_accessible(provider)

        late = await late_ctx.new_page()
        await late.goto(son)
        await late.get_by_role("button", name="Join the video visit").click()
        await expect(late.locator("#refused-text")).to_contain_text("withdrawn")

        interpreter = await invitation("Interpreter")
        guest = await guest_ctx.new_page()
        errors: list[str] = []
        guest.on("pageerror", lambda e: errors.append(str(e)))
        await guest.goto(interpreter)
        await guest.get_by_role("button", name="Join the video visit").click()
        await expect(guest.locator("#waiting")).to_be_visible()
        await expect(provider.locator("#guests-list li")).to_contain_text("Interpreter: waiting")
        await provider.get_by_role("button", name="Admit Interpreter").click()
        await expect(provider.locator("#guests-list li")).to_contain_text("Interpreter: in the visit")
        await expect(guest.locator("#call")).to_be_visible()

        provider.once("dialog", lambda d: d.accept())
        remove = provider.get_by_role("button", name="Remove from visit (Interpreter)")
        await remove.focus()
        await provider.keyboard.press("Enter")
        await expect(guest.locator("#ended")).to_be_visible()
        await expect(guest.locator("#ended-text")).to_contain_text("no longer in this visit")
        await expect(provider.locator("#guests-panel")).to_be_hidden()
        # Coming back with the same browser does not let them in.
        await guest.reload()
        await expect(guest.locator("#call")).to_be_hidden()
        await expect(guest.locator("#waiting")).to_be_hidden()
        assert errors == [] and provider.errors == []  # type: ignore[attr-defined]
    finally:
        for ctx in (provider_ctx, guest_ctx, late_ctx):
            await ctx.close()
