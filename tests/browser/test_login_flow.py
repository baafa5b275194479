"""Logging in through the real page: a patient lands on the dashboard; a
provider is taken through two-factor enrolment first (a screen of its own, titled
for what it is and without a Register button), then to the clinic console."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.async_api import expect

from rtc_server.auth.models import Role
from tests.browser.axe import assert_accessible
from tests.harness import PASSWORD, create_user, server_db

pytestmark = pytest.mark.browser



async def make_user(live_server, username: str, role: Role) -> None:
    async with server_db(live_server) as session_factory:
        await create_user(session_factory, username, role=role, display_name=username.title())


async def fill_login(page, live_server, username: str, password: str = PASSWORD) -> None:
    await page.goto(f"{live_server.url}/login.html")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def test_patient_logs_in_and_lands_on_the_dashboard(
    live_server, browser_page, secrets_seen
) -> None:
    secrets_seen.add(PASSWORD)
    await make_user(live_server, "maria.lopez", Role.patient)
    page = browser_page

    # A wrong password first: the page shows the server's message and stays put.
    await fill_login(page, live_server, "maria.lopez", "Not-The-Password-1")
    await page.get_by_text("Incorrect username or password").wait_for()

    await assert_accessible(page, phone=True)

    await fill_login(page, live_server, "maria.lopez")
    await page.wait_for_url(re.compile(r"/app/dashboard\.html$"))
    await page.get_by_role("heading", name="Dashboard").wait_for()
    await expect(page.locator("#welcome")).to_have_text("Welcome, Maria.Lopez.")


async def test_provider_enrols_in_two_factor_on_the_login_page(
    live_server, browser_page, secrets_seen
) -> None:
    secrets_seen.add(PASSWORD)
    await make_user(live_server, "dr.okafor", Role.provider)
    page = browser_page
    await fill_login(page, live_server, "dr.okafor")

    await page.get_by_role("heading", name="Set up two-factor authentication").wait_for()
    # Past the password this is set-up, not log-in: its own title and no Register button.
    await expect(page.get_by_role("heading", level=1)).to_have_text("Secure your account")
    await expect(page).to_have_title(re.compile(r"^Secure your account · "))
    await expect(page.get_by_role("banner").get_by_role("link", name="Register")).to_have_count(0)
    await expect(page.locator("#enrol-step code.secret")).to_be_visible()
    await assert_accessible(page, phone=True)
    secret_text = await page.locator("#enrol-step code.secret").inner_text()
    secret = re.sub(r"\s+", "", secret_text)
    secrets_seen.add(secret)
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    await page.get_by_label("6-digit code from your app").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Turn on two-factor authentication").click()

    await page.get_by_role("heading", name="Save your recovery codes").wait_for()
    codes = await page.get_by_role("list", name="Recovery codes").locator("li").all_inner_texts()
    secrets_seen.update(codes)
    assert len(codes) == 10
    await assert_accessible(page)
    await page.get_by_role("button", name="I saved these").click()
    await page.wait_for_url(re.compile(r"/console/index\.html$"))
    await page.get_by_role("heading", name="Today", exact=True).wait_for()
    nav = page.get_by_role("navigation", name="Console sections")
    await expect(nav.get_by_role("link", name="Today", exact=True)).to_be_visible()
    # Providers do not see the identity-verification queue (staff and admins do),
    # nor the patient tabs.
    await expect(nav.get_by_role("link", name="Verifications")).to_have_count(0)
    await expect(nav.get_by_role("link", name="Medical Records")).to_have_count(0)
    await expect(page.locator("#welcome")).to_contain_text("Welcome, Dr.Okafor.")
