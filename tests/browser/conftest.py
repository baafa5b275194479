"""Browser tests share one Chromium (the session-scoped ``browser`` fixture), and
Playwright objects only work on the event loop that made them, so every test
that uses the browser runs on the session's event loop. Its other fixtures
(the live server, the database) keep their own per-test loops."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.helpers import CLINIC

BROWSER_FIXTURES = {"browser", "browser_page"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            # First in the list, so it wins over the marker asyncio_mode=auto adds.
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


@pytest.fixture
def clinic_settings(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The clinic's name, phone and hours, set the way a deployment sets them (RTC_*)."""
    for key, value in CLINIC.items():
        monkeypatch.setenv(f"RTC_CLINIC_{key.upper()}", value)
    return CLINIC


@pytest.fixture
def clinic_server(clinic_settings: dict[str, str], live_server: Any) -> Any:
    """The live server of a clinic with a name, phone number and hours (the settings
    are in the environment before ``live_server`` builds its Settings)."""
    return live_server
