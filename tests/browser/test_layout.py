"""One layout for every response, in a real browser: the 404 page is a portal page
like the others; the clinic's name, phone and hours show in the header, the title and
the footer; tabs without their feature say so honestly; and every page fits a phone,
with its title near the top, even with the text at twice its size."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from rtc_server.auth.models import Role
from tests.browser.axe import assert_accessible
from tests.browser.helpers import (
    CLINIC,
    CLINIC_PAGES,
    PATIENT_PAGES,
    PUBLIC_PAGES,
    open_settled,
    phone_problems,
    sideways_overflow,
    signed_in,
)

pytestmark = pytest.mark.browser

async def test_missing_page_has_the_portal_layout_and_a_way_back(
    live_server: Any, browser_page: Page
) -> None:
    page = browser_page
    response = await page.goto(live_server.url + "/no-such-page")
    assert response is not None and response.status == 404
    assert "text/html" in response.headers["content-type"]
    assert response.headers.get("x-request-id")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("meta[name=viewport]")).to_have_count(1)
    await expect(page.locator("link[rel=icon]")).to_have_count(1)
    await expect(page.get_by_role("heading", name="Page not found", level=1)).to_be_visible()
    await expect(page.get_by_role("banner").get_by_role("link", name="Log in")).to_be_visible()
    await expect(page.get_by_role("contentinfo")).to_contain_text("In an emergency, call 911.")
    # The portal's own style sheet is applied (not the browser's serif default).
    font = await page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "system-ui" in font
    await expect(page).to_have_title(f"Page not found · {live_server.settings.clinic_name}")
    await assert_accessible(page, phone=True)

    await page.get_by_role("link", name="Go to the start page").click()
    await page.wait_for_url(live_server.url + "/")
    # API paths keep answering JSON.
    api = await page.request.get(live_server.url + "/api/v1/no-such-thing")
    assert api.status == 404 and (await api.json())["error"]["code"] == "not_found"


async def test_the_clinic_names_itself_and_tabs_without_their_feature_say_so(
    clinic_server: Any, browser_page: Page
) -> None:
    page, server = browser_page, clinic_server
    await open_settled(page, server.url + "/", clinic=CLINIC["name"])
    banner = page.get_by_role("banner")
    await expect(banner.get_by_role("link", name="Harbor Family Practice")).to_be_visible()
    await expect(page).to_have_title("Welcome · Harbor Family Practice")
    footer = page.get_by_role("contentinfo")
    await expect(footer).to_contain_text("Harbor Family Practice. Call 617-555-0100 (weekdays 8 am to 5 pm).")
    await expect(footer.get_by_role("link", name="617-555-0100")).to_have_attribute(
        "href", "tel:+16175550100")

    await signed_in(server, page, "maria.lopez", Role.patient, display_name="María López")
    # What these tabs promised at c0b0a01 with nothing behind it. (Other sessions are
    # building these features; the tabs that are still placeholders must say so.)
    claims = {
        "/app/dashboard.html": "gathered here, and new ones appear without reloading",
        "/app/records.html": "appear here once your care team releases them",
        "/app/messages.html": "read their replies",
        "/app/visits.html": "Join a scheduled video visit",
    }
    for path, claim in claims.items():
        await open_settled(page, server.url + path, clinic=CLINIC["name"])
        await expect(page.locator("#main")).not_to_contain_text(claim)
        assert (await page.title()).endswith(" · Harbor Family Practice")
        # A tab still without its feature says so, with a next step and the number to call.
        empty = page.locator("#main-content.empty-state")
        if not await empty.count():
            continue
        await expect(empty).to_contain_text("not available yet")
        await expect(empty).to_contain_text("Next step:")
        await expect(empty.get_by_role("link", name="617-555-0100")).to_have_attribute(
            "href", "tel:+16175550100")
        await expect(empty).to_contain_text("(weekdays 8 am to 5 pm)")
        if path == "/app/messages.html":
            await expect(empty).to_contain_text("In an emergency, call 911.")

    await open_settled(page, server.url + "/app/help.html", clinic=CLINIC["name"])
    talk = page.get_by_role("region", name="Talk to a person")
    await expect(talk.get_by_role("link", name="617-555-0100")).to_be_visible()


async def test_public_pages_fit_a_phone_with_the_title_on_top_even_with_double_text(
    clinic_server: Any, browser_page: Page
) -> None:
    page, server = browser_page, clinic_server
    problems = []
    for path in [*PUBLIC_PAGES, "/no-such-page"]:
        problems += await phone_problems(page, server.url + path, clinic=CLINIC["name"])
    assert problems == []


async def test_patient_pages_fit_a_phone_with_a_compact_header_even_with_double_text(
    clinic_server: Any, browser_page: Page
) -> None:
    page, server = browser_page, clinic_server
    await signed_in(server, page, "maria.lopez", Role.patient, display_name="María López")
    problems = []
    for path in PATIENT_PAGES:
        problems += await phone_problems(page, server.url + path, clinic=CLINIC["name"])
        await assert_accessible(page)
    assert problems == []

    # The compact bar: clinic and Menu; the tabs, the name and Log out open under it.
    menu = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Portal sections")
    await expect(nav.get_by_role("link", name="Dashboard")).to_be_hidden()
    await expect(page.get_by_role("button", name="Log out")).to_be_hidden()
    await menu.click()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
    await expect(nav).to_contain_text("María López")
    await assert_accessible(page)
    await nav.get_by_role("button", name="Log out").click()
    await page.wait_for_url(re.compile(r"/login\.html$"))


async def test_clinic_pages_fit_a_phone_even_with_double_text(
    clinic_server: Any, browser_page: Page
) -> None:
    page, server = browser_page, clinic_server
    await signed_in(server, page, "site.admin", Role.admin, display_name="Morgan Ellis")
    problems = []
    for path in CLINIC_PAGES:
        problems += await phone_problems(page, server.url + path, clinic=CLINIC["name"])
        await assert_accessible(page)
    assert problems == []


async def test_breakpoints_follow_the_browsers_text_size(live_server: Any, browser_page: Page) -> None:
    page = browser_page
    await signed_in(live_server, page, "ana.silva", Role.patient)
    await open_settled(page, live_server.url + "/app/help.html")
    menu = page.get_by_role("button", name="Menu")
    await expect(menu).to_be_hidden()
    # A reader who doubles the browser's default font size gets the one-column layout
    # at a desktop width too: the breakpoints are in em.
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Page.setFontSizes", {"fontSizes": {"standard": 32, "fixed": 26}})
    await page.reload()
    await expect(menu).to_be_visible()
    assert await sideways_overflow(page) == 0
    await cdp.detach()
