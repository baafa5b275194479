"""Signing up through the real pages in Chromium: the patient says who they are,
gets the emailed link, chooses a username (checked live) and password on the
activation page, and logs in; a record the clinic cannot confirm by itself goes
to a person, the pages and mail say so honestly, and the staff page's Undo after
Approve really sends nothing. Every state is checked with axe (WCAG 2.1 A/AA)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from playwright.async_api import Page, expect

from rtc_server.auth.models import Role
from tests.browser.axe import assert_accessible
from tests.harness import create_patient, create_signed_in_user, create_user, server_db

pytestmark = pytest.mark.browser

PASSWORD = "Harbor-Lantern-73q"
PET = "What was the name of your first pet?"
ANSWER = "Biscuit the dog"
STAFF_PASSWORD = "Staff-Desk-Pass-9"


async def import_patient(live_server: Any, *, email: str | None, zip_code: str | None = "02139") -> None:
    async with server_db(live_server) as session_factory:
        await create_patient(
            session_factory, given="Zoë", family="Núñez", birth=date(1984, 3, 12),
            zip_code=zip_code, email=email, mrn="MRN-1001", phone="617-555-0100",
        )


async def fill_registration(page: Page, base: str, *, email: str, zip_code: str = "02139") -> None:
    await page.goto(f"{base}/register.html")
    await page.get_by_label("First name").fill("Zoe")
    await page.get_by_label("Last name").fill("Nunez")
    await page.get_by_label("Date of birth").fill("1984-03-12")
    await page.get_by_label("ZIP code").fill(zip_code)
    await page.get_by_label("Email address").fill(email)
    await page.get_by_role("checkbox", name=re.compile("Terms and Conditions")).check()
    await page.get_by_role("checkbox", name=re.compile("Privacy Policy")).check()
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    # The same words whatever was found: a person may need to check, and how long that takes.
    await expect(page.get_by_text("If a person at the clinic needs to check your details first"))\
        .to_be_visible()
    await expect(page.get_by_text("up to 2 business days").first).to_be_visible()


def the_link(smtp: Any, secrets_seen: set[str]) -> str:
    [link] = smtp.links(smtp.messages[-1])
    secrets_seen.add(link.split("token=", 1)[1])
    return link


async def choose_credentials(page: Page, *, username: str = "zoe.nunez") -> None:
    await page.get_by_label("Username").fill(username)
    await expect(page.locator("#username-status")).to_have_text(f"✓ {username} is available.")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_label("Question", exact=True).select_option(label=PET)
    await page.get_by_label("Answer", exact=True).fill(ANSWER)
    await page.get_by_role("button", name="Activate account").click()
    await expect(page.get_by_text("Your account is active")).to_be_visible()
    await expect(page.get_by_text(f"Your username is {username}.")).to_be_visible()


async def log_in(page: Page, base: str, username: str = "zoe.nunez") -> None:
    await page.get_by_role("link", name="Log in").last.click()
    await page.wait_for_url(re.compile(r"/login\.html"))
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/app/dashboard.html")


async def test_patient_registers_chooses_a_username_at_activation_and_logs_in(
    live_server: Any, browser_page: Page, smtp: Any, secrets_seen: set[str]
) -> None:
    secrets_seen.update({PASSWORD, ANSWER})
    page, base = browser_page, live_server.url
    await import_patient(live_server, email="zoe@example.org")
    async with server_db(live_server) as session_factory:
        await create_user(session_factory, "maria.alvarez", password="Other-Pass-Word-5")

    await page.goto(f"{base}/register.html")
    # The register form asks who you are, not for a username.
    await expect(page.get_by_label("Username")).to_have_count(0)
    await assert_accessible(page)
    await fill_registration(page, base, email="zoe@example.org")
    await assert_accessible(page)
    [msg] = await smtp.wait_for(1)
    assert str(msg["To"]) == "zoe@example.org"
    link = the_link(smtp, secrets_seen)
    assert link.startswith(f"{base}/activate.html?token=")

    await page.goto(link)
    await expect(page.get_by_text("Welcome, Zoe.")).to_be_visible()
    await expect(page.get_by_text("6 to 64 characters: letters, numbers")).to_be_visible()
    # Only here, with the link, does the page say whether a name is taken.
    await page.get_by_label("Username").fill("Maria.Alvarez")
    await expect(page.locator("#username-status")).to_have_text("That username is taken; choose another.")

    # The checklist ticks as the password grows; the server adds "not common".
    rules = page.locator("#password-rules li")
    await expect(rules).to_have_count(6)
    await page.get_by_label("Password", exact=True).fill("password")
    await expect(page.locator('#password-rules [data-rule="length"]')).to_have_attribute("data-met", "true")
    await expect(page.locator('#password-rules [data-rule="upper"]')).to_have_attribute("data-met", "false")
    await page.get_by_label("Password", exact=True).fill("Password1")
    await expect(page.locator('#password-rules [data-rule="upper"]')).to_have_attribute("data-met", "true")
    await expect(page.locator('#password-rules [data-rule="common"]')).to_have_attribute("data-met", "false")
    # Show password switches both fields to text and back.
    await page.get_by_label("Show password").check()
    await expect(page.get_by_label("Password", exact=True)).to_have_attribute("type", "text")
    await expect(page.get_by_label("Confirm password")).to_have_attribute("type", "text")
    await page.get_by_label("Show password").uncheck()
    await expect(page.get_by_label("Password", exact=True)).to_have_attribute("type", "password")
    # Sending anyway: one summary lists both problems, each a link to its field.
    await page.get_by_label("Confirm password").fill("Password1")
    await page.get_by_label("Question", exact=True).select_option(label=PET)
    await page.get_by_label("Answer", exact=True).fill(ANSWER)
    await page.get_by_role("button", name="Activate account").click()
    summary = page.locator("#credentials-form [data-form-alert]")
    await expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    await expect(summary.get_by_role("link")).to_have_text([
        "Username: That username is taken; choose another.",
        "Password: This password is too common; choose another.",
    ])
    await expect(summary).to_be_focused()
    await assert_accessible(page)
    await summary.get_by_role("link", name=re.compile("^Password")).click()
    await expect(page.get_by_label("Password", exact=True)).to_be_focused()

    await choose_credentials(page)
    await assert_accessible(page)
    await log_in(page, base)
    # The link worked once; following it again says so.
    await page.goto(link)
    await expect(page.get_by_text("already been used")).to_be_visible()
    assert page.console_errors == [] or all("Failed to load resource" in e for e in page.console_errors)


async def test_register_form_checks_everything_in_one_round_with_a_linked_summary(
    live_server: Any, browser_page: Page
) -> None:
    page = browser_page
    sent: list[str] = []
    page.on("request", lambda r: "/auth/register" in r.url and sent.append(r.url))
    await page.goto(f"{live_server.url}/register.html")
    await page.get_by_label("First name").fill("Zoe")
    await page.get_by_label("Date of birth").fill("1984-03-12")
    await page.get_by_label("ZIP code").fill("0213")
    await page.get_by_label("Email address").fill("zoe@")
    await page.get_by_role("button", name="Create account").click()

    summary = page.locator("[data-form-alert]")
    await expect(summary).to_be_focused()
    await expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    await expect(summary.locator("li")).to_have_text([
        "Last name: Enter your last name as it appears in your record.",
        "ZIP code: Enter a 5-digit ZIP code, or ZIP+4 such as 12345-6789.",
        "Email address: Enter a valid email address, such as name@example.com.",
        "You must accept the Terms and Conditions of Use to register.",
        "You must accept the Privacy Policy to register.",
    ])
    # Each problem is also beside its field, tied to it for screen readers.
    zip_input = page.get_by_label("ZIP code")
    await expect(zip_input).to_have_attribute("aria-invalid", "true")
    described = (await zip_input.get_attribute("aria-describedby") or "").split()
    await expect(page.locator(f"#{described[-1]}")).to_have_text(
        "Enter a 5-digit ZIP code, or ZIP+4 such as 12345-6789.")
    await assert_accessible(page)
    await summary.get_by_role("link", name=re.compile("^ZIP code")).click()
    await expect(zip_input).to_be_focused()
    assert sent == []  # the browser caught it all: nothing was sent

    # Fixing everything clears the summary on the next try.
    await page.get_by_label("Last name").fill("Nunez")
    await zip_input.fill("02139")
    await page.get_by_label("Email address").fill("zoe@example.org")
    await page.get_by_role("checkbox", name=re.compile("Terms and Conditions")).check()
    await page.get_by_role("checkbox", name=re.compile("Privacy Policy")).check()
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    assert len(sent) == 1


async def test_register_fields_stack_on_a_phone_with_large_text(
    live_server: Any, browser_page: Page
) -> None:
    page = browser_page
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{live_server.url}/register.html")
    await page.evaluate("document.documentElement.style.fontSize = '200%'")
    overflow = await page.evaluate(
        "document.scrollingElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    first = await page.get_by_label("First name").bounding_box()
    last = await page.get_by_label("Last name").bounding_box()
    assert first is not None and last is not None and last["y"] > first["y"] + first["height"]
    await assert_accessible(page)


async def test_staff_review_is_explained_and_undo_after_approve_sends_nothing(
    live_server: Any, browser: Any, browser_page: Page, smtp: Any, secrets_seen: set[str]
) -> None:
    secrets_seen.update({PASSWORD, ANSWER, STAFF_PASSWORD})
    base = live_server.url
    # No email and no ZIP code on file: only a person can confirm this patient.
    await import_patient(live_server, email=None, zip_code=None)

    await fill_registration(browser_page, base, email="zoe.new@example.net")
    # "Request received" goes out at once, saying a person may check and how long it takes.
    [receipt] = await smtp.wait_for(1)
    assert str(receipt["To"]) == "zoe.new@example.net"
    assert "a person at the clinic" in smtp.text(receipt) and smtp.links(receipt) == []

    async with server_db(live_server) as session_factory:
        token = await create_signed_in_user(
            session_factory, live_server.settings, "frontdesk1", role=Role.staff,
            password=STAFF_PASSWORD, display_name="Front Desk", email=None,
        )
    secrets_seen.add(token)
    staff_context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        await staff_context.add_cookies([{"name": "rtc_session", "value": token, "url": base}])
        staff = await staff_context.new_page()
        await staff.clock.install()
        await staff.goto(f"{base}/staff/verifications.html")
        card = staff.locator("article.verification")
        await expect(card.get_by_text("zoe.new@example.net")).to_be_visible()
        await expect(card.get_by_text("MRN-1001")).to_be_visible()
        # Missing from the record reads "Not on file", never "Differs".
        for detail in ("ZIP code", "Email"):
            row = card.get_by_role("row", name=re.compile(f"^{detail}"))
            await expect(row.get_by_text("Not on file")).to_be_visible()
            await expect(row.get_by_text("Differs")).to_have_count(0)
        await assert_accessible(staff)

        # Approve, then Undo within the grace period: the card is back, nothing was sent.
        await card.get_by_role("button", name=re.compile("^Approve")).click()
        await expect(card).to_have_count(0)
        undo = staff.get_by_role("button", name=re.compile("^Undo"))
        await expect(staff.get_by_text("Approved Zoe Nunez.")).to_be_visible()
        await expect(undo).to_be_focused()
        await assert_accessible(staff)
        await undo.click()
        await expect(staff.get_by_text("Undone. Zoe Nunez's registration is still waiting")).to_be_visible()
        await expect(card.get_by_role("button", name=re.compile("^Approve"))).to_be_focused()
        await staff.clock.run_for(20_000)  # long past the grace period: still nothing
        await staff.get_by_role("button", name="Refresh").click()
        await expect(card).to_have_count(1)
        assert len(smtp.messages) == 1

        # Approve and let the grace period pass: now the link goes out.
        await card.get_by_role("button", name=re.compile("^Approve")).click()
        await staff.clock.run_for(9_000)
        await expect(staff.get_by_text("The activation email was sent")).to_be_visible()
        await expect(staff.get_by_text("No registrations are waiting")).to_be_visible()
    finally:
        await staff_context.close()

    await smtp.wait_for(2)
    activation = smtp.messages[-1]
    assert str(activation["To"]) == "zoe.new@example.net"
    # Staff approval leads to the same activation step: the username is chosen there.
    await browser_page.goto(the_link(smtp, secrets_seen))
    await choose_credentials(browser_page)
    await log_in(browser_page, base)
