"""Reads are audited through the instance's group-commit writer: the row is
committed before the answer goes out, carries the server's tag (the sealer
chains it), and a read that changed something still commits its change and its
row together."""

from __future__ import annotations

import asyncio

from rtc_server import audit
from tests.api.test_records import BOTH_BACKENDS, audit_rows, import_demo, patient_client


@BOTH_BACKENDS
async def test_a_dashboard_read_is_on_record_when_its_answer_arrives(app, session_factory) -> None:
    clinic = await import_demo(session_factory, settings=app.state.settings)
    client = await patient_client(app, session_factory, clinic, "kowalski")
    writer = app.state.audit_writer
    before = writer.batches

    answers = await asyncio.gather(*(client.get("/api/v1/dashboard") for _ in range(5)))

    assert [a.status_code for a in answers] == [200] * 5
    rows = await audit_rows(session_factory, "dashboard.read")
    assert len(rows) == 5
    assert {r.patient_id for r in rows} == {clinic.patients["kowalski"]}
    assert 1 <= writer.batches - before <= 5  # rows that arrive together share a commit
    settings = app.state.settings
    sealer = audit.Sealer(session_factory, settings.secret, head_file=settings.audit_head_file)
    await sealer.run_once()
    result = await audit.verify(session_factory, settings.secret, head_file=settings.audit_head_file)
    assert result.ok, result.problems
    assert result.unsealed == 0


async def test_a_lab_list_that_classified_new_results_commits_them_with_its_row(
    app, session_factory,
) -> None:
    clinic = await import_demo(session_factory)  # results left unclassified: the read classifies them
    client = await patient_client(app, session_factory, clinic, "kowalski")
    writer = app.state.audit_writer
    before = writer.batches

    first = await client.get("/api/v1/labs")
    assert first.status_code == 200, first.text
    assert writer.batches == before  # it wrote: its own transaction holds the row
    second = await client.get("/api/v1/labs")
    assert second.status_code == 200
    assert second.json()["tests"] == first.json()["tests"]
    assert writer.batches == before + 1  # a pure read: the writer's batch
    assert len(await audit_rows(session_factory, "lab.list")) == 2


async def test_a_read_is_refused_rather_than_answered_when_its_row_cannot_be_written(
    app, session_factory,
) -> None:
    clinic = await import_demo(session_factory, settings=app.state.settings)
    client = await patient_client(app, session_factory, clinic, "kowalski")
    async with app.state.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE audit_event RENAME TO audit_event_away")
    try:
        r = await client.get("/api/v1/dashboard")
    finally:
        async with app.state.engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE audit_event_away RENAME TO audit_event")
    assert r.status_code == 500
    assert "appointments" not in r.text
