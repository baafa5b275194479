"""What several browser tests do: sign a person in on the live server, open a page
and wait for it to settle, measure sideways overflow and scale the text."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Page, expect

from rtc_server.auth.models import Role, SessionStage
from tests.harness import create_signed_in_user, server_db

PHONE = {"width": 390, "height": 844}
#: The clinic the pages name in the ``clinic_server`` fixture.
CLINIC = {"name": "Harbor Family Practice", "phone": "617-555-0100", "hours": "weekdays 8 am to 5 pm"}
DESKTOP = {"width": 1280, "height": 900}

PUBLIC_PAGES = [
    "/", "/register.html", "/login.html", "/forgot-password.html", "/forgot-username.html",
    "/terms.html", "/privacy.html", "/activate.html", "/reset-password.html", "/confirm-email.html",
    "/help.html",
]
#: The patient's tabs and Account Settings' own pages.
PATIENT_PAGES = [
    "/app/dashboard.html", "/app/appointments.html", "/app/records.html", "/app/messages.html",
    "/app/visits.html", "/app/account.html", "/app/security.html", "/app/notifications.html",
    "/app/help.html", "/app/refills.html",
]
#: The clinic's pages an administrator sees through the portal layout.
CLINIC_PAGES = [
    "/staff/index.html", "/staff/verifications.html", "/admin/users.html", "/admin/audit.html",
    "/app/account.html", "/app/security.html", "/app/notifications.html",
]


async def signed_in(live_server: Any, page: Page, username: str, role: Role,
                    stage: SessionStage = SessionStage.full, display_name: str | None = None) -> None:
    """Create an account and a session of ``stage`` on the live server; give ``page`` its cookie."""
    async with server_db(live_server) as session_factory:
        token = await create_signed_in_user(
            session_factory, live_server.settings, username, role=role, stage=stage,
            display_name=display_name if display_name is not None else username.title())
    await page.context.add_cookies([{"name": "rtc_session", "value": token, "url": live_server.url}])


async def open_settled(page: Page, url: str, *, clinic: str | None = None) -> None:
    """Open ``url`` and wait until it has drawn what it loads: its heading, the clinic's
    name (when ``clinic`` is given), the portal's tabs, and no "Loading…" line left.
    (Cheaper than the "networkidle" state, which always waits half a second.)"""
    await page.goto(url)
    await expect(page.locator("h1")).to_be_visible()
    if clinic is not None:
        await expect(page.locator(".site-header .brand > span")).to_have_text(clinic)
    if await page.locator("#portal-nav").count():
        await expect(page.locator("#portal-nav a").first).to_be_attached()
    await expect(page.locator(".loading")).to_have_count(0)


async def sideways_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0: no sideways scrolling)."""
    return await page.evaluate(
        "document.scrollingElement.scrollWidth - document.documentElement.clientWidth")


async def set_text_size(page: Page, percent: int) -> None:
    """Scale the root font size, as browser and phone text-size settings do (WCAG 1.4.4)."""
    await page.evaluate(f"document.documentElement.style.fontSize = '{percent}%'")


async def h1_top(page: Page) -> float:
    box = await page.locator("h1").bounding_box()
    assert box is not None
    return box["y"]


async def phone_problems(page: Page, url: str, *, clinic: str | None = None) -> list[str]:
    """What is wrong with ``url`` on a 390 x 844 phone: the title (h1) starting 100 px
    or more down, sideways scrolling, or sideways scrolling with the text at 200 %."""
    problems = []
    await page.set_viewport_size(PHONE)
    await set_text_size(page, 100)
    await open_settled(page, url, clinic=clinic)
    top = await h1_top(page)
    if top >= 100:
        problems.append(f"{url}: h1 starts {top:.0f} px down")
    if overflow := await sideways_overflow(page):
        problems.append(f"{url}: {overflow} px sideways overflow")
    await set_text_size(page, 200)
    if overflow := await sideways_overflow(page):
        problems.append(f"{url}: {overflow} px sideways overflow with 200 % text")
    await set_text_size(page, 100)
    return problems


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)
