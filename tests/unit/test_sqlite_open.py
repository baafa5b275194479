"""A task cancelled while its SQLite connection is being opened (a worker stopped at
shutdown) leaves no connection behind: aiosqlite hands the new sqlite3 connection to
a future nobody reads then, and it would be dropped unclosed (Python 3.13 reports
that as an "unclosed sqlite3.Connection" at some later, unrelated moment)."""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest
from sqlalchemy import text

from rtc_server.db import create_engine

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 13), reason="sqlite3 reports connections dropped unclosed from Python 3.13 on"
)


async def test_cancelling_a_task_that_is_opening_a_connection_leaves_none_unclosed(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(repr(u.object)))
    engine = create_engine(settings)

    async def query() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        for delay in range(40):
            task = asyncio.create_task(query())
            await asyncio.sleep(delay / 10_000)  # lands at some point of the open
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.2)  # closes scheduled for opens that finished late
    finally:
        await engine.dispose()
    gc.collect()
    assert [d for d in dropped if "sqlite3.Connection" in d] == []
