"""The admin pages list what they find a page at a time: the results table,
Older and Newer (web/js/paging.js, shared by the accounts and audit pages)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from rtc_server.auth.models import Role, User
from tests.harness import PASSWORD, create_signed_in_user, create_user, server_db

pytestmark = pytest.mark.browser


async def test_admin_pages_through_accounts_and_searches_the_audit_log(
    live_server: Any, browser_page: Page, secrets_seen: set[str]
) -> None:
    page = browser_page
    async with server_db(live_server) as session_factory:
        token = await create_signed_in_user(session_factory, live_server.settings, "site.admin",
                                            role=Role.admin, display_name="Site Admin")
        for n in range(26):
            await create_user(session_factory, f"patient.{n:02d}")
    secrets_seen.add(token)
    await page.context.add_cookies([{"name": "rtc_session", "value": token, "url": live_server.url}])

    await page.goto(live_server.url + "/admin/users.html")
    status = page.locator("#users-page-status")
    await expect(status).to_have_text("Page 1, 27 accounts.")
    await page.get_by_label("Rows per page").select_option("25")
    await page.get_by_role("button", name="Search").click()
    await expect(status).to_have_text("Page 1, 25 accounts.")
    table = page.get_by_role("table", name="User accounts, newest first")
    await expect(table.locator("tbody tr")).to_have_count(25)
    await expect(table.get_by_role("columnheader")).to_have_count(7)
    await expect(table.locator("tbody tr").first).to_contain_text("patient.25")
    await expect(page.get_by_role("button", name="Newer")).to_be_disabled()

    await page.get_by_role("button", name="Older").click()
    await expect(status).to_have_text("Page 2, 2 accounts.")
    await expect(table.locator("tbody tr").last).to_contain_text("site.admin")
    await expect(page.get_by_role("button", name="Older")).to_be_disabled()
    await page.get_by_role("button", name="Newer").click()
    await expect(status).to_have_text("Page 1, 25 accounts.")

    await page.goto(live_server.url + "/admin/audit.html")
    await expect(page.locator("#audit-page-status, #audit-results p").first).to_be_visible()
    await page.get_by_label("Action").fill("audit.search")
    await page.get_by_role("button", name="Search").click()
    entries = page.get_by_role("table", name="Audit log entries, newest first")
    await expect(entries.locator("tbody tr").first).to_contain_text("audit.search")
    await expect(page.locator("#audit-page-status")).to_contain_text("Page 1, ")


async def test_making_another_admin_asks_for_the_admins_password(
    live_server: Any, browser_page: Page, secrets_seen: set[str]
) -> None:
    page = browser_page
    async with server_db(live_server) as session_factory:
        token = await create_signed_in_user(session_factory, live_server.settings, "site.admin",
                                            role=Role.admin, display_name="Site Admin")
        staff_id = await create_user(session_factory, "front.desk", role=Role.staff)
    secrets_seen.update({token, PASSWORD, "Wrong-Pass-31"})
    await page.context.add_cookies([{"name": "rtc_session", "value": token, "url": live_server.url}])

    await page.goto(live_server.url + "/admin/users.html")
    await page.get_by_label("Role for front.desk", exact=True).select_option("admin")
    await page.get_by_role("button", name="Save role for front.desk").click()
    dialog = page.get_by_role("dialog", name="Confirm with your password")
    await expect(dialog).to_be_visible()
    password = dialog.get_by_label("Your current password")
    await expect(password).to_be_focused()
    await password.fill("Wrong-Pass-31")
    await dialog.get_by_role("button", name="Change role").click()
    await expect(dialog.locator(".field-error")).to_contain_text("not right")
    await expect(dialog).to_be_visible()

    await password.fill(PASSWORD)
    await dialog.get_by_role("button", name="Change role").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#users-message")).to_contain_text(
        "front.desk: role changed from Staff to Admin.")
    async with server_db(live_server) as session_factory, session_factory() as s:
        assert (await s.get(User, staff_id)).role == Role.admin
