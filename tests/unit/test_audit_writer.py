"""The group-commit audit writer: a read's row is committed before ``write``
returns, rows that gather while a batch commits go in the next one, every row
carries the server's tag so the sealer chains it, and a failed batch fails
every request in it without stopping the writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from rtc_server import audit
from rtc_server.audit_writer import AuditWriteFailed, AuditWriter
from rtc_server.db import create_engine, make_session_factory, utcnow


@pytest_asyncio.fixture
async def engine(settings) -> AsyncIterator[Any]:
    engine = create_engine(settings)  # tags audit rows with the server key, as the app's does
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def writer(engine) -> AsyncIterator[AuditWriter]:
    writer = AuditWriter(engine)
    writer.start()
    try:
        yield writer
    finally:
        await writer.aclose()


def row(patient_id: int) -> dict[str, Any]:
    return {"at": utcnow(), "actor_id": 7, "actor_role": "patient", "patient_id": patient_id,
            "action": "dashboard.read", "resource": f"patient:{patient_id}", "outcome": "success",
            "request_id": f"req-{patient_id}", "ip": "127.0.0.1"}


async def stored(engine) -> list[tuple[int, int]]:
    async with make_session_factory(engine)() as db:
        found = await db.exec(text("SELECT id, patient_id FROM audit_event ORDER BY id"))
        return [(r[0], r[1]) for r in found]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_reads_arriving_together_commit_in_one_batch_and_the_sealer_chains_them(
    settings, engine, writer,
) -> None:
    await asyncio.gather(*(writer.write(row(i)) for i in range(1, 21)))
    # every write returned: every row is already committed, in the order handed in
    assert [p for _, p in await stored(engine)] == list(range(1, 21))
    assert writer.batches == 1
    factory = make_session_factory(engine)
    sealer = audit.Sealer(factory, settings.secret, head_file=settings.audit_head_file)
    assert await sealer.run_once() == 20  # tagged with the server key: nothing refused as forged
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    assert result.ok and result.checked == 20


async def test_a_row_handed_in_while_a_batch_commits_goes_in_the_next(engine, writer) -> None:
    first = asyncio.ensure_future(writer.write(row(1)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the writer has taken the first batch and is committing it
    await asyncio.gather(first, writer.write(row(2)), writer.write(row(3)))
    assert [p for _, p in await stored(engine)] == [1, 2, 3]
    assert writer.batches == 2


async def test_a_failed_batch_fails_its_requests_and_the_writer_carries_on(engine, writer) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE audit_event RENAME TO audit_event_away")
    with pytest.raises(AuditWriteFailed):
        await asyncio.gather(writer.write(row(1)), writer.write(row(2)))
    async with engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE audit_event_away RENAME TO audit_event")
    await writer.write(row(3))
    assert [p for _, p in await stored(engine)] == [3]


async def test_closing_writes_what_is_pending_then_refuses(engine) -> None:
    writer = AuditWriter(engine)
    writer.start()
    pending = [asyncio.ensure_future(writer.write(row(i))) for i in (1, 2)]
    await asyncio.sleep(0)
    await writer.aclose()
    await asyncio.gather(*pending)
    assert [p for _, p in await stored(engine)] == [1, 2]
    with pytest.raises(AuditWriteFailed):
        await writer.write(row(3))
