"""``server``: the app served by uvicorn on the test's loop, in-process broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from rtc_server.config import Settings
from tests.ws.helpers import Served, serving


@pytest_asyncio.fixture
async def server(settings: Settings) -> AsyncIterator[Served]:
    async with serving(settings) as served:
        yield served
