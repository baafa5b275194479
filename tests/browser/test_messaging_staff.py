"""The clinic's staff see a new conversation appear in the console inbox while
it is open, without a reload (the event goes to every staff page)."""

# ruff: noqa: F811 (the fixtures imported from test_messaging are parameters here)
from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from rtc_server.auth.models import Role
from rtc_server.auth.sessions import session_cookie_name
from tests.browser.test_messaging import (  # noqa: F401 (fixtures)
    care_team,
    doctor_context,
    listening,
    start_conversation,
    watch_errors,
)
from tests.harness import create_signed_in_user, server_db

pytestmark = pytest.mark.browser


async def test_staff_see_a_new_conversation_in_the_console_inbox_live(
    live_server: Any, browser_page: Page, doctor_context: Any,
) -> None:
    patient = await watch_errors(browser_page)
    await care_team(live_server, patient.context, doctor_context)
    async with server_db(live_server) as factory:
        token = await create_signed_in_user(factory, live_server.settings, "front.desk", role=Role.staff,
                                            display_name="Front Desk")
    await doctor_context.clear_cookies()
    await doctor_context.add_cookies([{"name": session_cookie_name(live_server.settings), "value": token,
                                       "url": live_server.url}])
    desk = await watch_errors(await doctor_context.new_page())
    await desk.goto(live_server.url + "/console/messages.html")
    await expect(desk.locator("#list-status")).to_contain_text("No open conversations.")
    await listening(desk)

    await start_conversation(patient, live_server, "Billing question", "Why two charges?")
    row = desk.locator("#conversation-list .conversation-item")
    await expect(row).to_contain_text("Maria Lopez: Billing question")
    assert desk.errors == []  # type: ignore[attr-defined]
