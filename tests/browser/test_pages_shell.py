"""The page shell in a real browser against the real server: the landing page's header,
phone-width layout, labels, no console errors or CSP violations, and the portal layout
(redirects, tabs, log out, the idle-timeout warning)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from rtc_server.auth.models import Role, SessionStage
from tests.harness import create_signed_in_user, server_db

pytestmark = pytest.mark.browser

PUBLIC_PAGES = [
    "/", "/register.html", "/login.html", "/forgot-password.html", "/forgot-username.html",
    "/terms.html", "/privacy.html", "/activate.html", "/reset-password.html", "/confirm-email.html",
]
PATIENT_TABS = [
    "Dashboard", "Appointments", "Medical Records", "Messaging", "Virtual Visits",
    "Account Settings", "Help Desk",
]


async def signed_in(live_server: Any, page: Page, username: str, role: Role,
                    stage: SessionStage = SessionStage.full) -> None:
    """Create an account and a session of `stage` on the live server; give `page` its cookie."""
    async with server_db(live_server) as session_factory:
        token = await create_signed_in_user(session_factory, live_server.settings, username,
                                            role=role, stage=stage, display_name=username.title())
    await page.context.add_cookies([{"name": "rtc_session", "value": token, "url": live_server.url}])


async def open_quietly(page: Page, url: str) -> list[str]:
    """Open `url`, wait for its requests to settle, and return CSP violations seen."""
    await page.add_init_script(
        "window.__csp = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    response = await page.goto(url)
    assert response is not None and response.ok
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    await page.wait_for_load_state("networkidle")
    return await page.evaluate("window.__csp")


async def test_landing_page_has_register_at_the_top_right_and_log_in(live_server, browser_page) -> None:
    page = browser_page
    await page.goto(live_server.url + "/")
    register = page.get_by_role("banner").get_by_role("link", name="Register", exact=True)
    log_in = page.get_by_role("banner").get_by_role("link", name="Log in", exact=True)
    await expect(register).to_be_visible()
    await expect(log_in).to_be_visible()
    reg, login = await register.bounding_box(), await log_in.bounding_box()
    width = page.viewport_size["width"]
    assert reg is not None and login is not None
    assert reg["x"] + reg["width"] > width * 0.8, reg
    assert reg["y"] < 100, reg
    assert login["x"] < reg["x"]
    await register.click()
    await page.wait_for_url(re.compile(r"/register\.html$"))


@pytest.mark.parametrize("path", ["/", "/register.html", "/login.html"])
async def test_page_fits_a_phone_screen_without_sideways_scrolling(live_server, browser_page, path) -> None:
    page = browser_page
    await page.set_viewport_size({"width": 375, "height": 800})
    await page.goto(live_server.url + path)
    await page.wait_for_load_state("networkidle")
    scroll_width, inner_width = await page.evaluate(
        "[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width
    if path == "/":
        # The header buttons stay on one row with the brand.
        register = await page.get_by_role("link", name="Register", exact=True).bounding_box()
        assert register is not None and register["y"] < 60


async def test_register_page_labels_every_control(live_server, browser_page) -> None:
    page = browser_page
    await page.goto(live_server.url + "/register.html")
    for label in ["First name", "Last name", "Date of birth", "ZIP code", "Email address", "Username",
                  "Password", "Confirm password", "Question", "Answer"]:
        await expect(page.get_by_label(label, exact=True)).to_have_count(1)
    for label in ["I accept the Terms and Conditions of Use", "I accept the Privacy Policy"]:
        await expect(page.get_by_role("checkbox", name=label)).to_have_count(1)
    unlabelled = await page.locator("input, select, textarea").evaluate_all(
        "els => els.filter(e => e.type !== 'hidden' && !e.labels.length"
        " && !e.getAttribute('aria-label')).map(e => e.name)")
    assert unlabelled == []
    # Password rules come from the server's policy.
    await expect(page.locator("#password-rules")).to_contain_text("At least")
    await expect(page.get_by_role("button", name="Submit")).to_be_visible()


async def test_register_shows_field_messages_beside_their_fields(live_server, browser_page) -> None:
    page = browser_page
    await page.goto(live_server.url + "/register.html")
    await page.get_by_role("button", name="Submit").click()
    first = page.get_by_label("First name", exact=True)
    await expect(first).to_have_attribute("aria-invalid", "true")
    await expect(first).to_be_focused()
    described = await first.get_attribute("aria-describedby") or ""
    error = page.locator(f"#{described.split()[-1]}")
    await expect(error).to_have_text("Enter first name.")
    await expect(page.get_by_role("alert").first).to_contain_text("highlighted fields")


@pytest.mark.parametrize("path", PUBLIC_PAGES)
async def test_public_page_loads_without_console_errors_or_csp_violations(
    live_server, browser_page, path
) -> None:
    page = browser_page
    violations = await open_quietly(page, live_server.url + path)
    assert violations == []
    assert page.console_errors == []
    await expect(page.locator("h1")).to_have_count(1)


async def test_legal_pages_show_the_current_version(live_server, browser_page) -> None:
    page = browser_page
    await page.goto(live_server.url + "/terms.html")
    await expect(page.locator("#legal-version")).to_have_text(re.compile(r"^Version \S+$"))


async def test_portal_page_without_a_session_goes_to_log_in_and_comes_back(live_server, browser_page) -> None:
    page = browser_page
    await page.goto(live_server.url + "/app/dashboard.html")
    await page.wait_for_url(re.compile(r"/login\.html\?next=%2Fapp%2Fdashboard\.html$"))
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()


async def test_log_in_page_says_when_the_session_expired(live_server, browser_page) -> None:
    page = browser_page
    await page.goto(live_server.url + "/login.html?expired=1")
    await expect(page.get_by_text("Your session expired")).to_be_visible()


async def test_patient_sees_the_portal_tabs_and_logs_out(live_server, browser_page) -> None:
    page = browser_page
    await signed_in(live_server, page, "ana.silva", Role.patient)
    await page.goto(live_server.url + "/app/records.html")
    nav = page.get_by_role("navigation", name="Portal sections")
    await expect(nav.get_by_role("link")).to_have_text(PATIENT_TABS)
    await expect(nav.get_by_role("link", name="Medical Records")).to_have_attribute("aria-current", "page")
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(re.compile(r"/login\.html$"))
    await page.goto(live_server.url + "/app/records.html")
    await page.wait_for_url(re.compile(r"/login\.html\?next="))


async def test_admin_gets_the_staff_tabs_and_the_audit_log(live_server, browser_page) -> None:
    page = browser_page
    await signed_in(live_server, page, "root.admin", Role.admin)
    await page.goto(live_server.url + "/admin/audit.html")
    nav = page.get_by_role("navigation", name="Portal sections")
    await expect(nav.get_by_role("link")).to_have_text(
        [*PATIENT_TABS, "Clinic console", "Verification queue", "Users", "Audit log"]
    )
    await expect(page.locator("#audit-results table, #audit-results p")).to_be_visible()
    await expect(page.locator("#portal-status [role=alert]")).to_have_count(0)


async def test_patient_cannot_open_the_audit_log(live_server, browser_page) -> None:
    page = browser_page
    await signed_in(live_server, page, "ben.cho", Role.patient)
    await page.goto(live_server.url + "/admin/audit.html")
    await expect(page.get_by_role("alert")).to_contain_text("You do not have access to this page")
    await expect(page.get_by_role("navigation", name="Portal sections").get_by_role("link")).to_have_text(
        PATIENT_TABS)


async def test_half_finished_login_is_sent_back_for_the_code(live_server, browser_page) -> None:
    page = browser_page
    await signed_in(live_server, page, "cara.diaz", Role.patient, SessionStage.mfa_pending)
    await page.goto(live_server.url + "/app/dashboard.html")
    await page.wait_for_url(re.compile(r"/login\.html\?resume=1&next="))
    await expect(page.get_by_label("Verification code")).to_be_visible()
    await expect(page.get_by_label("Verification code")).to_be_focused()


async def test_account_settings_loads_every_section_from_the_api(live_server, browser_page) -> None:
    page = browser_page
    await signed_in(live_server, page, "dev.patel", Role.patient)
    await page.goto(live_server.url + "/app/account.html")
    for heading in ["Contact information", "Username", "Password", "Security question", "Notifications",
                    "Active sessions", "Two-factor authentication"]:
        await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    await expect(page.locator("#current-username")).to_have_text("dev.patel")
    await expect(page.get_by_label("Email address")).to_have_value("dev.patel@example.org")
    await expect(page.get_by_role("checkbox", name="Appointment reminders by email")).to_have_count(1)
    await expect(page.get_by_text("This device")).to_be_visible()
    await expect(page.get_by_role("button", name="Turn on two-factor authentication")).to_be_visible()
    assert page.console_errors == []


async def test_idle_warning_offers_to_stay_then_signs_out(live_server, browser_page) -> None:
    page = browser_page
    await signed_in(live_server, page, "eli.moss", Role.patient)
    await page.clock.install()
    await page.goto(live_server.url + "/app/dashboard.html")
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await page.wait_for_load_state("networkidle")
    idle = live_server.settings.session_idle_seconds

    dialog = page.get_by_role("alertdialog", name="You will be signed out in 60 seconds")
    await page.clock.run_for((idle - 50) * 1000)
    await expect(dialog).to_be_visible()
    stay = dialog.get_by_role("button", name="Stay signed in")
    await expect(stay).to_be_focused()
    await stay.click()
    await expect(dialog).to_be_hidden()

    await page.clock.run_for((idle + 5) * 1000)
    await page.wait_for_url(re.compile(r"/login\.html\?expired=1$"))
    await expect(page.get_by_text("Your session expired")).to_be_visible()
