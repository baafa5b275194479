"""A patient registers through the real pages, activates from the emailed link,
logs in and lands on the dashboard; and the same for a record with no email,
through the staff identity-verification page."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from playwright.async_api import Page, expect

from rtc_server.auth.models import Role
from tests.harness import create_patient, create_signed_in_user, server_db

pytestmark = pytest.mark.browser

PASSWORD = "Harbor-Lantern-73q"
ANSWER = "Biscuit the dog"
STAFF_PASSWORD = "Staff-Desk-Pass-9"


async def import_patient(live_server: Any, *, email: str | None) -> None:
    async with server_db(live_server) as session_factory:
        await create_patient(
            session_factory, given="Zoë", family="Núñez", birth=date(1984, 3, 12),
            zip_code="02139", email=email, mrn="MRN-1001", phone="617-555-0100",
        )


async def fill_registration(page: Page, base: str, *, email: str) -> None:
    await page.goto(f"{base}/register.html")
    await page.get_by_label("First name").fill("Zoe")
    await page.get_by_label("Last name").fill("Nunez")
    await page.get_by_label("Date of birth").fill("1984-03-12")
    await page.get_by_label(re.compile("zip code", re.I)).fill("02139")
    await page.get_by_label(re.compile("^Email", re.I)).fill(email)
    await page.get_by_label("Username").fill("zoe.nunez")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_label(re.compile("question", re.I)).first.select_option(
        label="What was the name of your first pet?")
    await page.get_by_label("Answer").fill(ANSWER)
    await page.get_by_role("checkbox", name=re.compile("Terms and Conditions")).check()
    await page.get_by_role("checkbox", name=re.compile("Privacy Policy")).check()
    await page.get_by_role("button", name="Submit").click()
    await expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    await expect(page.get_by_text("If the details match our records")).to_be_visible()


async def activate_and_log_in(page: Page, base: str, link: str) -> None:
    await page.goto(link)
    await expect(page.get_by_text("Your account is active")).to_be_visible()
    await page.get_by_role("link", name="Log in").last.click()
    await page.wait_for_url(re.compile(r"/login\.html"))
    await page.get_by_label("Username").fill("zoe.nunez")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/app/dashboard.html")


def the_link(smtp: Any, secrets_seen: set[str]) -> str:
    [link] = smtp.links(smtp.messages[-1])
    secrets_seen.add(link.split("token=", 1)[1])
    return link


async def test_patient_registers_activates_and_reaches_the_dashboard(
    live_server: Any, browser_page: Page, smtp: Any, secrets_seen: set[str]
) -> None:
    secrets_seen.update({PASSWORD, ANSWER})
    base = live_server.url
    await import_patient(live_server, email="zoe@example.org")

    await fill_registration(browser_page, base, email="zoe@example.org")
    [msg] = await smtp.wait_for(1)
    assert str(msg["To"]) == "zoe@example.org"
    link = the_link(smtp, secrets_seen)
    assert link.startswith(f"{base}/activate.html?token=")

    await activate_and_log_in(browser_page, base, link)
    # The link worked once; following it again says so.
    await browser_page.goto(link)
    await expect(browser_page.get_by_text("already been used")).to_be_visible()


async def test_record_without_email_is_approved_by_staff_then_activated(
    live_server: Any, browser: Any, browser_page: Page, smtp: Any, secrets_seen: set[str]
) -> None:
    secrets_seen.update({PASSWORD, ANSWER, STAFF_PASSWORD})
    base = live_server.url
    await import_patient(live_server, email=None)

    await fill_registration(browser_page, base, email="zoe.new@example.net")
    assert smtp.messages == []  # nothing goes out before a person has checked

    # Staff must enrol in two-factor at log-in; the test starts from a full session.
    async with server_db(live_server) as session_factory:
        token = await create_signed_in_user(
            session_factory, live_server.settings, "frontdesk1", role=Role.staff,
            password=STAFF_PASSWORD, display_name="Front Desk", email=None,
        )
    secrets_seen.add(token)
    staff_context = await browser.new_context()
    try:
        await staff_context.add_cookies([{"name": "rtc_session", "value": token, "url": base}])
        staff_page = await staff_context.new_page()
        await staff_page.goto(f"{base}/staff/verifications.html")
        await expect(staff_page.get_by_text("zoe.new@example.net")).to_be_visible()
        await expect(staff_page.get_by_text("MRN-1001")).to_be_visible()
        await staff_page.get_by_role("button", name=re.compile("^Approve")).click()
        await expect(staff_page.get_by_text("No registrations are waiting")).to_be_visible()
    finally:
        await staff_context.close()

    [msg] = await smtp.wait_for(1)
    assert str(msg["To"]) == "zoe.new@example.net"
    await activate_and_log_in(browser_page, base, the_link(smtp, secrets_seen))
