"""The audit chain: edits, deletions in the middle and cut-off ends are all found."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from rtc_server import audit


async def _write_rows(session_factory, n: int) -> None:
    async with session_factory() as s:
        for i in range(n):
            await audit.record(s, action="record.read", actor_id=1, patient_id=i,
                               resource=f"observation:{i}")
        await s.commit()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_intact_chain_verifies_and_an_edit_is_named(settings, session_factory) -> None:
    head = settings.audit_head_file
    await _write_rows(session_factory, 5)
    await audit.seal(session_factory, settings.secret, head_file=head)  # the app may seal first
    result = await audit.verify(session_factory, settings.secret, head_file=head)
    assert result.ok and result.checked >= 5
    async with session_factory() as s:
        victim = (await s.exec(text("SELECT id FROM audit_event ORDER BY seq LIMIT 1 OFFSET 2"))).one()[0]
        await s.exec(text("UPDATE audit_event SET patient_id = 999 WHERE id = :i").bindparams(i=victim))
        await s.commit()
    result = await audit.verify(session_factory, settings.secret, head_file=head)
    assert not result.ok and result.bad_row_id == victim


async def test_deleting_a_middle_row_is_found(settings, session_factory) -> None:
    await _write_rows(session_factory, 4)
    await audit.seal(session_factory, settings.secret)
    async with session_factory() as s:
        await s.exec(text("DELETE FROM audit_event WHERE seq = 2"))
        await s.commit()
    result = await audit.verify(session_factory, settings.secret)
    assert not result.ok and "gap" in (result.reason or "")


async def test_cutting_rows_off_the_end_is_found_through_the_recorded_head(
    settings, session_factory
) -> None:
    head = settings.audit_head_file
    await _write_rows(session_factory, 4)
    await audit.seal(session_factory, settings.secret, head_file=head)
    async with session_factory() as s:
        await s.exec(text("DELETE FROM audit_event WHERE seq = (SELECT max(seq) FROM audit_event)"))
        await s.commit()
    assert (await audit.verify(session_factory, settings.secret)).ok  # the chain alone can't tell
    result = await audit.verify(session_factory, settings.secret, head_file=head)
    assert not result.ok and "missing from the end" in (result.reason or "")
