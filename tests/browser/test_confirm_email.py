"""The email-change confirmation page: the token leaves the address bar at
once, and when a log-in comes first it waits in the tab's sessionStorage (not
in the log-in link) and is dropped once used."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from rtc_server.auth import emailed_tokens
from rtc_server.auth.models import TokenPurpose, User
from tests.harness import create_user, server_db

pytestmark = pytest.mark.browser

KEY = "rtc.confirm-email.token"


async def pending_change(live_server: Any) -> tuple[int, str]:
    """An account asking to move to a new address; its id and the mailed token."""
    async with server_db(live_server) as session_factory:
        user_id = await create_user(session_factory, "maria.lopez")
        async with session_factory() as db:
            user = await db.get(User, user_id)
            user.pending_email = "maria.new@example.org"
            db.add(user)
            token = await emailed_tokens.issue(db, user_id=user_id, purpose=TokenPurpose.email_change,
                                               email="maria.new@example.org")
            await db.commit()
    return user_id, token


async def email_of(live_server: Any, user_id: int) -> str | None:
    async with server_db(live_server) as session_factory, session_factory() as db:
        return (await db.get(User, user_id)).email


async def test_confirm_link_drops_the_token_from_the_address_bar(
    live_server: Any, browser_page: Page, secrets_seen: set[str]
) -> None:
    page = browser_page
    user_id, token = await pending_change(live_server)
    secrets_seen.add(token)

    await page.goto(f"{live_server.url}/confirm-email.html?token={token}")
    await expect(page.get_by_role("status")).to_contain_text("has been confirmed")
    assert await page.evaluate("location.search") == ""
    assert await page.evaluate(f"sessionStorage.getItem({json.dumps(KEY)})") is None
    assert await email_of(live_server, user_id) == "maria.new@example.org"


async def test_a_log_in_first_keeps_the_token_out_of_the_log_in_link(
    live_server: Any, browser_page: Page, secrets_seen: set[str]
) -> None:
    page = browser_page
    user_id, token = await pending_change(live_server)
    secrets_seen.add(token)

    # A server that wants a session first (ours does not today) answers 401 once.
    async def signed_out(route: Route) -> None:
        await route.fulfill(status=401, content_type="application/json", body=json.dumps(
            {"error": {"code": "unauthenticated", "message": "Please sign in."}}))

    confirm_api = "**/api/v1/account/email/confirm"
    await page.route(confirm_api, signed_out)
    await page.goto(f"{live_server.url}/confirm-email.html?token={token}")
    log_in = page.get_by_role("link", name="Log in").last
    await expect(page.locator("#confirm-status")).to_contain_text("Log in to confirm")
    assert await page.evaluate("location.search") == ""
    href = await log_in.get_attribute("href")
    assert token not in (href or "") and href == "/login.html?next=%2Fconfirm-email.html"
    assert await page.evaluate(f"sessionStorage.getItem({json.dumps(KEY)})") == token
    await page.unroute(confirm_api, signed_out)

    # Back from the log-in page (same tab): the stored token is used, then dropped.
    await page.goto(f"{live_server.url}/confirm-email.html")
    await expect(page.get_by_role("status")).to_contain_text("has been confirmed")
    assert await page.evaluate(f"sessionStorage.getItem({json.dumps(KEY)})") is None
    assert await email_of(live_server, user_id) == "maria.new@example.org"
