"""Media tests: aiortc peers, Chromium pages and coturn. Tests that use the browser
run on the session's event loop (Playwright objects belong to the loop that made
them), as in tests/browser/conftest.py."""

from __future__ import annotations

import pytest

BROWSER_FIXTURES = {"browser", "browser_page"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)
