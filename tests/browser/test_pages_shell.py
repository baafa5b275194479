"""The page shell in a real browser against the real server: the landing page's header,
labels, no console errors, CSP violations or axe-core findings, and the portal layout
(redirects and the way back after logging in, tabs per role, log out, the idle-timeout
warning)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from rtc_server.auth.models import Role, SessionStage
from tests.browser.axe import assert_accessible
from tests.browser.helpers import PUBLIC_PAGES, signed_in
from tests.harness import PASSWORD

pytestmark = pytest.mark.browser

PATIENT_TABS = [
    "Dashboard", "Appointments", "Medical Records", "Messaging", "Virtual Visits",
    "Account Settings", "Help Desk",
]


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


async def test_public_pages_load_without_console_errors_csp_violations_or_axe_findings(
    live_server, browser_page
) -> None:
    page = browser_page
    await page.add_init_script(
        "window.__csp = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    problems = []
    for path in PUBLIC_PAGES:
        response = await page.goto(live_server.url + path)
        assert response is not None and response.ok, path
        assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
        await expect(page.locator("h1")).to_have_count(1)
        await expect(page.locator(".site-header .brand > span")).to_have_text(
            live_server.settings.clinic_name)
        violations = await page.evaluate("window.__csp")
        if violations or page.console_errors:
            problems.append(f"{path}: CSP {violations}, console {page.console_errors}")
        page.console_errors.clear()
        try:
            await assert_accessible(page, phone=True)
        except AssertionError as exc:
            problems.append(str(exc))
    assert problems == []


async def test_legal_pages_show_the_current_version(live_server, browser_page) -> None:
    page = browser_page
    await page.goto(live_server.url + "/terms.html")
    await expect(page.locator("#legal-version")).to_have_text(re.compile(r"^Version \S+$"))


async def test_deep_link_while_signed_out_asks_to_log_in_then_returns_to_that_page(
    live_server, browser_page, secrets_seen
) -> None:
    page = browser_page
    secrets_seen.add(PASSWORD)
    await signed_in(live_server, page, "gil.ortiz", Role.patient)
    await page.context.clear_cookies()
    await page.goto(live_server.url + "/app/records.html?view=all#top")
    await page.wait_for_url(re.compile(r"/login\.html\?next=%2Fapp%2Frecords\.html%3Fview%3Dall$"))
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await expect(page.locator("#login-notices")).to_contain_text("Please log in to continue")
    await page.get_by_label("Username").fill("gil.ortiz")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"/app/records\.html\?view=all$"))
    await expect(page.get_by_role("heading", name="Medical Records", level=1)).to_be_visible()


async def test_log_in_never_sends_people_to_another_site(live_server, browser_page, secrets_seen) -> None:
    page = browser_page
    secrets_seen.add(PASSWORD)
    await signed_in(live_server, page, "hal.quinn", Role.patient)
    await page.context.clear_cookies()
    await page.goto(live_server.url + "/login.html")
    unsafe = ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example",
              "javascript:alert(1)", "evil.example", "/login.html"]
    kept = await page.evaluate(
        "async (values) => { const m = await import('/js/session.js');"
        " return values.map((v) => m.safeNext(v)); }", unsafe)
    assert kept == [None] * len(unsafe)
    assert await page.evaluate(
        "import('/js/session.js').then((m) => m.safeNext('/app/help.html?x=1#faq'))"
    ) == "/app/help.html?x=1#faq"

    await page.goto(live_server.url + "/login.html?next=" + "%2F%2Fevil.example%2Fx")
    await expect(page.locator("#login-notices")).to_be_empty()
    await page.get_by_label("Username").fill("hal.quinn")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(live_server.url + "/app/dashboard.html")


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


async def test_admin_gets_only_the_clinic_tabs_and_the_audit_log(live_server, browser_page) -> None:
    page = browser_page
    await signed_in(live_server, page, "root.admin", Role.admin)
    await page.goto(live_server.url + "/admin/audit.html")
    nav = page.get_by_role("navigation", name="Portal sections")
    await expect(nav.get_by_role("link")).to_have_text(
        ["Clinic console", "Verification queue", "Users", "Audit log", "Account Settings"]
    )
    await expect(page.locator("#audit-results table, #audit-results p")).to_be_visible()
    await expect(page.locator("#portal-status [role=alert]")).to_have_count(0)
    await assert_accessible(page, phone=True)


async def test_clinician_console_greets_by_name_and_role_without_patient_tabs(
    live_server, browser_page
) -> None:
    page = browser_page
    await signed_in(live_server, page, "dr.marsh", Role.provider, display_name="Dr. Elena Marsh, MD")
    await page.goto(live_server.url + "/staff/index.html")
    await expect(page.locator("#welcome")).to_have_text(
        "Welcome, Dr. Elena Marsh, MD. Signed in as Provider.")
    nav = page.get_by_role("navigation", name="Portal sections")
    await expect(nav.get_by_role("link")).to_have_text(["Clinic console", "Account Settings"])
    tools = page.locator("#console-tools")
    await expect(tools.get_by_role("link", name="Account Settings")).to_be_visible()
    await expect(tools.get_by_role("link", name="Audit log")).to_have_count(0)
    await assert_accessible(page, phone=True)

    # A patient page opened by hand says it is not theirs instead of showing patient tabs.
    await page.goto(live_server.url + "/app/records.html")
    await expect(page.get_by_role("alert")).to_contain_text("You do not have access to this page")
    await expect(nav.get_by_role("link", name="Medical Records")).to_have_count(0)


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


async def test_idle_warning_offers_to_stay_then_signs_out_and_log_in_returns_to_the_page(
    live_server, browser_page, secrets_seen
) -> None:
    page = browser_page
    secrets_seen.add(PASSWORD)
    await signed_in(live_server, page, "eli.moss", Role.patient)
    await page.clock.install()
    await page.goto(live_server.url + "/app/help.html")
    await expect(page.get_by_role("heading", name="Help Desk", level=1)).to_be_visible()
    await page.wait_for_load_state("networkidle")
    idle = live_server.settings.session_idle_seconds

    dialog = page.get_by_role("alertdialog", name="You are about to be signed out")
    await page.clock.run_for((idle - 50) * 1000)
    await expect(dialog).to_be_visible()
    # The heading names no time of its own, so it cannot disagree with the countdown.
    assert not re.search(r"\d", await dialog.get_by_role("heading").inner_text())
    await expect(dialog.locator(".idle-dialog__time")).to_have_text(re.compile(r"^Time left: 0:[0-5]\d$"))
    stay = dialog.get_by_role("button", name="Stay signed in")
    await expect(stay).to_be_focused()
    await assert_accessible(page)
    await stay.click()
    await expect(dialog).to_be_hidden()

    await page.clock.run_for((idle + 5) * 1000)
    await page.wait_for_url(re.compile(r"/login\.html\?expired=1&next=%2Fapp%2Fhelp\.html$"))
    await expect(page.get_by_text("Your session expired")).to_be_visible()
    await page.get_by_label("Username").fill("eli.moss")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"/app/help\.html$"))
