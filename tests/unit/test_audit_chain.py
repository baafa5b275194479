"""The audit chain: edits, deletions and cut-off ends are found; several sealers
keep one chain; ids committed out of order on PostgreSQL raise no false alarm."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import text

from rtc_server import audit
from rtc_server.db import create_engine, make_session_factory, utcnow


@pytest_asyncio.fixture
async def factory(settings) -> AsyncIterator[object]:
    """Sessions on an engine that tags audit rows with the server key, as the app's does."""
    engine = create_engine(settings)
    audit.bind_key(engine, settings.secret)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


async def write_rows(factory, n: int) -> list[int]:
    async with factory() as s:
        rows = [audit.AuditEvent(at=utcnow(), action="record.read", actor_id=1, patient_id=i,
                                 resource=f"observation:{i}", outcome="success") for i in range(n)]
        s.add_all(rows)
        await s.commit()
        return [r.id for r in rows]


async def run(factory, *statements: str, **params: int) -> None:
    async with factory() as s:
        for statement in statements:
            used = {k: v for k, v in params.items() if f":{k}" in statement}
            await s.exec(text(statement).bindparams(**used))
        await s.commit()


async def unsealed(factory) -> list[int]:
    async with factory() as s:
        return [r[0] for r in await s.exec(text("SELECT id FROM audit_event WHERE seq IS NULL ORDER BY id"))]


def sealer(factory, settings, **options: object) -> audit.Sealer:
    return audit.Sealer(factory, settings.secret, head_file=settings.audit_head_file, **options)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_intact_chain_verifies_and_an_edit_is_named(settings, factory) -> None:
    ids = await write_rows(factory, 5)
    assert await sealer(factory, settings).run_once() == 5
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    assert result.ok and result.checked == 5 and result.head is not None and result.head.seq == 5
    await run(factory, "UPDATE audit_event SET patient_id = 999 WHERE id = :v", v=ids[2])
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    assert not result.ok and result.bad_row_id == ids[2]
    assert audit.summarize(result.problems) == [
        f"row id {ids[2]}: contents do not match the chain (edited after it was sealed)"]


async def test_deleting_a_sealed_row_in_the_middle_names_it(settings, factory) -> None:
    ids = await write_rows(factory, 4)
    await sealer(factory, settings).run_once()
    await run(factory, "DELETE FROM audit_event WHERE id = :v", v=ids[1])
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    assert result.bad_row_id == ids[1]
    assert audit.summarize(result.problems) == [
        f"row id {ids[1]}: missing (id {ids[1]} deleted)",
        f"row id {ids[2]}: seq 2 missing before this row (sealed rows deleted)",
    ]


async def test_cutting_rows_off_the_end_is_found_through_the_recorded_head(settings, factory) -> None:
    await write_rows(factory, 4)
    await sealer(factory, settings).run_once()
    head = audit.read_head_file(settings.audit_head_file)
    assert head is not None and head.head.seq == 4
    await run(factory, "DELETE FROM audit_event WHERE seq >= 3")
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    assert not result.ok
    assert "the chain ends at seq 2 but seq 4 was sealed" in (result.reason or "")
    # The same from a head kept elsewhere, with no file on this host.
    settings.audit_head_file.unlink()
    result = await audit.verify(factory, settings.secret, heads=[head.head])
    assert "the chain ends at seq 2 but seq 4 was sealed" in (result.reason or "")


async def test_on_sqlite_a_row_deleted_before_it_was_sealed_is_named(settings, factory, log_lines) -> None:
    await write_rows(factory, 2)
    await sealer(factory, settings).run_once()
    victim, _after = await write_rows(factory, 2)
    await run(factory, "DELETE FROM audit_event WHERE id = :v", v=victim)
    # SQLite hands out ids in commit order, so nothing is still to come: seal past the gap.
    assert await sealer(factory, settings, gap_settle_seconds=0).run_once() == 1
    assert any(f"row id {victim} missing (deleted before it was sealed)" in line for line in log_lines)
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    assert result.bad_row_id == victim and result.tampered


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_slower_transaction_committing_a_lower_id_later_is_sealed_in_order(settings, factory) -> None:
    await write_rows(factory, 1)
    chain = sealer(factory, settings)
    await chain.run_once()
    async with factory() as slow:
        await audit.record(slow, action="login.success", actor_id=2)
        await slow.flush()  # its id is taken, its commit is still to come
        (fast,) = await write_rows(factory, 1)
        assert await chain.run_once() == 0  # waits at the gap below the fast row
        await slow.commit()
    assert await chain.run_once() == 2
    assert await unsealed(factory) == []
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    assert result.ok, result.problems
    assert fast == 3


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_on_postgres_a_rolled_back_row_leaves_a_noted_gap_not_an_alarm(settings, factory) -> None:
    await write_rows(factory, 1)
    async with factory() as s:
        await audit.record(s, action="login.failure", actor_id=2)
        await s.flush()
        await s.rollback()
    await write_rows(factory, 1)
    assert await sealer(factory, settings, gap_settle_seconds=0).run_once() == 2
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    assert result.ok, result.problems
    assert any("rolled-back transaction" in n for n in result.notes)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_two_instances_sealing_at_once_keep_one_chain(settings, factory, tmp_path) -> None:
    first = sealer(factory, settings)
    second = audit.Sealer(factory, settings.secret, head_file=tmp_path / "other" / "audit-head")
    for _ in range(5):
        await write_rows(factory, 7)
        await asyncio.gather(first.run_once(), second.run_once(), first.run_once())
    await asyncio.gather(first.run_once(), second.run_once())
    assert await unsealed(factory) == []
    assert first.problem is None and second.problem is None
    for head_file in (settings.audit_head_file, tmp_path / "other" / "audit-head"):
        result = await audit.verify(factory, settings.secret, head_file=head_file)
        assert result.ok and result.checked == 35, result.problems


async def test_a_new_instance_adopts_the_chain_loudly_and_verify_says_so(
    settings, factory, log_lines
) -> None:
    await write_rows(factory, 3)
    await sealer(factory, settings).run_once()
    settings.audit_head_file.unlink()  # a new host, or a lost file
    await write_rows(factory, 1)
    newcomer = sealer(factory, settings)
    assert await newcomer.run_once() == 1
    assert any("no audit chain head on record" in line and "adopts seq=3" in line for line in log_lines)
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    assert result.ok and result.checked == 4
    assert any("adopted at seq 3" in n for n in result.notes)


async def test_rows_left_unsealed_too_long_are_reported_and_sealing_clears_them(settings, factory) -> None:
    await write_rows(factory, 2)
    later = utcnow() + audit.STALE_AFTER + timedelta(minutes=1)
    result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file, now=later)
    assert not result.ok and not result.tampered and result.sealable
    assert "2 row(s) written more than 10 minutes ago are not sealed yet" in (result.reason or "")
    await sealer(factory, settings).run_once()
    assert (await audit.verify(factory, settings.secret, head_file=settings.audit_head_file, now=later)).ok


def test_a_head_is_read_as_written_or_as_logged() -> None:
    digest = "ab" * 32
    assert audit.Head.parse(f"12:{digest}") == audit.Head(12, digest)
    assert audit.Head.parse(f"seq=12 digest={digest}") == audit.Head(12, digest)
    with pytest.raises(ValueError, match="SEQ:DIGEST"):
        audit.Head.parse("12:abc")
