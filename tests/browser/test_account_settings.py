"""Account Settings in a real browser: summary cards whose Edit opens the form in
place, Security and Notifications on pages of their own, and every confirmation at the
top of the page where it is seen (and announced). Everything the one long page did
still works: contact details, email change, username, password, security question,
notification channels, sessions and two-factor on and off."""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
from playwright.async_api import Locator, Page, expect
from sqlmodel import select

from rtc_server.auth.models import Role, SessionStage, User
from rtc_server.auth.sessions import create_session
from rtc_server.context import RequestMeta
from tests.browser.axe import assert_accessible
from tests.browser.helpers import open_settled, signed_in
from tests.harness import PASSWORD, server_db

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Quiet-Harbor-Lamp-94"


async def confirmed(page: Page, text: str) -> Locator:
    """The confirmation line: it says ``text``, is a live region, sits above the fold
    right under the page's heading."""
    status = page.locator("#page-status")
    await expect(status).to_contain_text(text)
    assert await status.get_attribute("role") == "status"
    box, h1 = await status.bounding_box(), await page.locator("h1").bounding_box()
    assert box is not None and h1 is not None
    assert 0 <= box["y"] < page.viewport_size["height"] / 2, box
    assert box["y"] > h1["y"]
    return status


async def test_account_page_shows_summary_cards_and_edits_contact_and_username_in_place(
    live_server: Any, browser_page: Page, secrets_seen: set[str]
) -> None:
    page = browser_page
    secrets_seen.add(PASSWORD)
    await signed_in(live_server, page, "dev.patel", Role.patient)
    await open_settled(page, live_server.url + "/app/account.html")
    for heading in ["Contact information", "Username", "Security", "Notifications"]:
        await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    contact = page.get_by_role("region", name="Contact information")
    await expect(contact.locator("#summary-email")).to_have_text("dev.patel@example.org")
    await expect(contact.locator("#summary-phone")).to_have_text("Not set")
    await expect(page.locator("#current-username")).to_have_text("dev.patel")
    await expect(page.get_by_role("region", name="Security")).to_contain_text("Off")
    await expect(page.get_by_role("link", name="Manage security")).to_have_attribute(
        "href", "/app/security.html")
    await expect(page.get_by_role("link", name="Manage notifications")).to_have_attribute(
        "href", "/app/notifications.html")
    nav = page.get_by_role("navigation", name="Portal sections")
    await expect(nav.get_by_role("link", name="Account Settings")).to_have_attribute("aria-current", "page")
    # One screen of cards, not seven forms (3,172 px at c0b0a01).
    assert await page.evaluate("document.scrollingElement.scrollHeight") < 1500
    await assert_accessible(page, phone=True)

    # Phone number and address: Edit opens the form; saving closes it and says so on top.
    edit = page.get_by_role("button", name="Edit contact information")
    await edit.click()
    await expect(edit).to_be_hidden()
    await expect(page.get_by_label("Email address")).to_have_value("dev.patel@example.org")
    await expect(page.get_by_label("Email address")).to_be_focused()
    await page.get_by_label("Mobile phone").fill("617-555-0199")
    await page.get_by_label("City").fill("Cambridge")
    await assert_accessible(page)
    await page.get_by_role("button", name="Save contact information").click()
    status = await confirmed(page, "Contact information saved.")
    await expect(status).to_be_focused()
    await expect(page.locator("#contact-form")).to_be_hidden()
    await expect(contact.locator("#summary-phone")).to_have_text("617-555-0199")
    await expect(contact.locator("#summary-address")).to_have_text("Cambridge")

    # A new email address asks for the password and waits for its confirmation link.
    await edit.click()
    await expect(page.locator("#page-status")).to_be_empty()
    await page.get_by_label("Email address").fill("dev.new@example.org")
    await contact.get_by_label("Current password").fill(PASSWORD)
    await page.get_by_role("button", name="Save contact information").click()
    await confirmed(page, "Check dev.new@example.org for a link to confirm the new address.")
    await expect(contact.locator("#pending-email")).to_contain_text("dev.new@example.org")
    await contact.get_by_role("button", name="Cancel email change").click()
    await confirmed(page, "The email change was cancelled")
    await expect(contact.locator("#pending-email")).to_be_empty()

    # Cancel closes the form without saving.
    await edit.click()
    await page.get_by_label("Mobile phone").fill("000")
    await contact.get_by_role("button", name="Cancel").click()
    await expect(edit).to_be_focused()
    await expect(contact.locator("#summary-phone")).to_have_text("617-555-0199")

    # The username, with the current password.
    await page.get_by_role("button", name="Edit username").click()
    await page.get_by_label("New username").fill("dev.patel2")
    await page.get_by_role("region", name="Username").get_by_label("Current password").fill(PASSWORD)
    await page.get_by_role("button", name="Change username").click()
    await confirmed(page, "Username changed.")
    await expect(page.locator("#current-username")).to_have_text("dev.patel2")


async def test_security_page_changes_question_two_factor_sessions_and_password(
    live_server: Any, browser_page: Page, secrets_seen: set[str]
) -> None:
    page = browser_page
    secrets_seen.update({PASSWORD, NEW_PASSWORD, "Mittens"})
    await signed_in(live_server, page, "eva.ruiz", Role.patient)
    # The same person signed in on another computer too.
    async with server_db(live_server) as session_factory, session_factory() as db:
        user = (await db.exec(select(User).where(User.username == "eva.ruiz"))).one()
        meta = RequestMeta(request_id=None, ip="203.0.113.9",
                           user_agent="Mozilla/5.0 (Windows NT 10.0) Firefox/130.0")
        secrets_seen.add(await create_session(db, user, SessionStage.full, meta, live_server.settings))
        await db.commit()

    await page.goto(live_server.url + "/app/account.html")
    await page.get_by_role("link", name="Manage security").click()
    await page.wait_for_url(re.compile(r"/app/security\.html$"))
    for heading in ["Password", "Security question", "Two-factor authentication", "Active sessions"]:
        await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    nav = page.get_by_role("navigation", name="Portal sections")
    await expect(nav.get_by_role("link", name="Account Settings")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_text("This device")).to_be_visible()
    await assert_accessible(page, phone=True)

    # Security question.
    question = page.get_by_role("region", name="Security question")
    await question.get_by_label("New question").select_option("What was the name of your first pet?")
    await question.get_by_label("Answer").fill("Mittens")
    await question.get_by_label("Current password").fill(PASSWORD)
    await question.get_by_role("button", name="Save security question").click()
    await confirmed(page, "Security question saved.")
    await expect(page.locator("#current-question")).to_have_text("What was the name of your first pet?")

    # Another device's session can be ended.
    sessions = page.get_by_role("region", name="Active sessions")
    await sessions.get_by_role("button", name="End session: Firefox on Windows").click()
    await expect(sessions.get_by_role("listitem")).to_have_count(1)

    # Two-factor on, then off again.
    mfa = page.get_by_role("region", name="Two-factor authentication")
    await mfa.get_by_role("button", name="Turn on two-factor authentication").click()
    await mfa.get_by_label("Current password").fill(PASSWORD)
    await mfa.get_by_role("button", name="Continue").click()
    secret = re.sub(r"\s+", "", await mfa.locator("code.secret").inner_text())
    secrets_seen.add(secret)
    await mfa.get_by_label("6-digit code from your app").fill(pyotp.TOTP(secret).now())
    await mfa.get_by_role("button", name="Turn on two-factor authentication").click()
    await expect(mfa.get_by_role("list", name="Recovery codes").locator("li")).to_have_count(10)
    codes = await mfa.get_by_role("list", name="Recovery codes").locator("li").all_inner_texts()
    secrets_seen.update(codes)
    await assert_accessible(page)
    await mfa.get_by_role("button", name="I saved these").click()
    await confirmed(page, "Two-factor authentication is on.")
    await expect(mfa).to_contain_text("On")
    await mfa.get_by_label("Current password").fill(PASSWORD)
    await mfa.get_by_label("Code from your authenticator app").fill(codes[0])
    await mfa.get_by_role("button", name="Turn off two-factor authentication").click()
    await confirmed(page, "Two-factor authentication is off.")

    # The password last: it signs out every other session.
    password = page.get_by_role("region", name="Password")
    await password.get_by_label("Current password").fill(PASSWORD)
    await password.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await password.get_by_label("Confirm new password").fill(NEW_PASSWORD)
    await password.get_by_role("button", name="Change password").click()
    await confirmed(page, "Password changed.")
    await expect(password.get_by_label("Current password")).to_have_value("")


async def test_notifications_page_saves_the_channels(live_server: Any, browser_page: Page) -> None:
    page = browser_page
    await signed_in(live_server, page, "ivy.chen", Role.patient)
    await open_settled(page, live_server.url + "/app/notifications.html")
    await expect(page.get_by_role("heading", name="Notifications", level=1)).to_be_visible()
    await expect(page.get_by_text("add a mobile phone number in Account Settings")).to_be_visible()
    await assert_accessible(page, phone=True)
    box = page.get_by_role("checkbox", name="New test results by email")
    was = await box.is_checked()
    await box.set_checked(not was)
    await page.get_by_role("button", name="Save notification preferences").click()
    await confirmed(page, "Notification preferences saved.")
    size = await box.bounding_box()
    assert size is not None and size["width"] >= 24 and size["height"] >= 24

    await page.reload()
    await expect(page.get_by_role("checkbox", name="New test results by email")).to_be_checked(
        checked=not was)
    await page.get_by_role("link", name="Back to Account Settings").click()
    summary = page.locator("#summary-notify-email")
    if was:
        await expect(summary).not_to_contain_text("New test results")
    else:
        await expect(summary).to_contain_text("New test results")
