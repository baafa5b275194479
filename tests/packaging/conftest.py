"""The packaging test's browser check shares the session's Chromium (the ``browser``
fixture), whose Playwright objects belong to the session's event loop: run it there,
as tests/browser/conftest.py does for the browser tests."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE) and "browser" in getattr(item, "fixturenames", ()):
            # First in the list, so it wins over the marker asyncio_mode=auto adds.
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)
