"""The security review's attacks on the audit log (finding 1), as someone who can
write the database would run them: ``rtc-server audit verify`` names the first
edited, inserted or missing row, and the running server's sealer re-chains none
of it. Each attack passed unnoticed at commit c0b0a01."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text

from rtc_server import audit, cli
from rtc_server.db import create_engine, make_session_factory


async def write_rows(session_factory, n: int, *, action: str = "record.read") -> list[int]:
    """Audit rows written the way every service writes them; their ids."""
    async with session_factory() as s:
        for i in range(n):
            await audit.record(s, action=action, actor_id=7, actor_role="provider", patient_id=100 + i,
                               resource=f"observation:{i}", request_id=f"req-{i}", ip="127.0.0.1")
        await s.commit()
        rows = (await s.exec(text("SELECT id FROM audit_event ORDER BY id DESC LIMIT :n").bindparams(n=n)))
        return sorted(r[0] for r in rows)


async def sql(session_factory, *statements: str, **params: int) -> None:
    """What an attacker with database access types (one transaction; ``:name``
    takes the keyword ``name``)."""
    async with session_factory() as s:
        for statement in statements:
            used = {k: v for k, v in params.items() if f":{k}" in statement}
            await s.exec(text(statement).bindparams(**used))
        await s.commit()


async def seal_round(app) -> int:
    """One round of the running app's sealer (it also runs every 2 s by itself)."""
    return await app.state.audit_sealer.run_once()


async def unsealed_ids(session_factory) -> list[int]:
    async with session_factory() as s:
        return [r[0] for r in await s.exec(text("SELECT id FROM audit_event WHERE seq IS NULL ORDER BY id"))]


@pytest_asyncio.fixture
async def offline_writer(settings) -> AsyncIterator[object]:
    """Rows written the server's way (tagged with its key) while no server, and so
    no sealer, is running: a session factory."""
    engine = create_engine(settings)
    audit.bind_key(engine, settings.secret)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def run_audit(settings, monkeypatch, capsys):
    """``rtc-server audit …`` as an operator runs it; (exit status, stdout)."""
    monkeypatch.setenv("RTC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("RTC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RTC_SECRET_KEY", settings.secret_key)
    capsys.readouterr()

    async def run(*args: str) -> tuple[int, str]:
        status = await asyncio.to_thread(cli.main, ["audit", *args])  # the CLI runs its own loop
        return status, capsys.readouterr().out

    return run


def logged_heads(log_lines: list[str]) -> list[str]:
    """The heads the sealer logged: what a log shipped off the host keeps."""
    return re.findall(r"audit chain head seq=(\d+ digest=[0-9a-f]{64})", "\n".join(log_lines))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_an_edited_row_unsealed_from_there_on_is_named_and_never_resealed(
    app, session_factory, run_audit, log_lines
) -> None:
    ids = await write_rows(session_factory, 8)
    await seal_round(app)
    assert (await run_audit("verify"))[0] == 0
    victim = ids[3]
    await sql(session_factory,
              "UPDATE audit_event SET actor_id = 999, action = 'login.failure' WHERE id = :v",
              "UPDATE audit_event SET seq = NULL, digest = NULL WHERE id >= :v", v=victim)

    assert await seal_round(app) == 0
    assert await unsealed_ids(session_factory) == ids[3:]
    assert any("AUDIT LOG TAMPERED" in line for line in log_lines)

    status, out = await run_audit("verify")
    assert status == 1
    assert out.startswith(f"audit log TAMPERED: row id {victim}:"), out
    assert "cut off or un-sealed" in out


async def test_a_deleted_row_replaced_by_a_filler_and_resealed_followers_are_named(
    app, session_factory, run_audit
) -> None:
    ids = await write_rows(session_factory, 8)
    await seal_round(app)
    gone = ids[4]
    await sql(session_factory,
              "DELETE FROM audit_event WHERE id = :gone",
              "UPDATE audit_event SET seq = NULL, digest = NULL WHERE id > :gone",
              "INSERT INTO audit_event (id, at, actor_id, action, outcome) "
              "VALUES (:gone, '2026-11-27 10:00:00.000000', 3, 'record.read', 'success')", gone=gone)

    assert await seal_round(app) == 0
    assert await unsealed_ids(session_factory) == ids[4:]
    status, out = await run_audit("verify")
    assert status == 1
    assert out.startswith(f"audit log TAMPERED: row id {gone}:"), out
    assert "written into the database by hand" in out


async def test_a_forged_row_inserted_by_hand_is_never_sealed_and_is_named(
    app, session_factory, run_audit
) -> None:
    await write_rows(session_factory, 4)
    await seal_round(app)
    await sql(session_factory,
              "INSERT INTO audit_event (at, actor_id, actor_role, action, resource, outcome) VALUES "
              "(CURRENT_TIMESTAMP, 5, 'admin', 'role.change', 'user:2 patient->admin', 'success')")
    forged = (await unsealed_ids(session_factory))[0]
    later = await write_rows(session_factory, 2)  # the server goes on working

    await seal_round(app)
    assert await unsealed_ids(session_factory) == [forged]  # the real rows after it are sealed

    status, out = await run_audit("verify")
    assert status == 1
    assert out.startswith(f"audit log TAMPERED: row id {forged}: no row tag: written into the database"), out
    assert all(f"row id {i}:" not in out for i in later)


async def test_a_copy_of_a_real_row_slipped_in_before_sealing_is_named(
    app, session_factory, run_audit
) -> None:
    (original,) = await write_rows(session_factory, 1, action="login.success")
    columns = "at, actor_id, actor_role, patient_id, action, resource, outcome, request_id, ip, digest"
    await sql(session_factory,
              "INSERT INTO audit_event (" + columns + ") "  # noqa: S608 (the attacker's own statement)
              "SELECT " + columns + " FROM audit_event WHERE id = :original", original=original)
    copy = (await unsealed_ids(session_factory))[-1]

    await seal_round(app)
    assert await unsealed_ids(session_factory) == [copy]
    status, out = await run_audit("verify")
    assert status == 1
    assert f"row id {copy}: repeats row id {original}" in out


async def test_deleting_the_head_file_and_the_last_rows_is_reported(
    offline_writer, run_audit, settings, log_lines
) -> None:
    # No server running: rows sealed by ``rtc-server audit seal``.
    ids = await write_rows(offline_writer, 6)
    assert (await run_audit("seal"))[0] == 0
    shipped = logged_heads(log_lines)[-1]
    settings.audit_head_file.unlink()
    await sql(offline_writer, "DELETE FROM audit_event WHERE id > :keep", keep=ids[2])

    status, out = await run_audit("verify")
    assert status == 1
    assert out.startswith("audit log NOT VERIFIED: no head on record"), out
    assert (await run_audit("seal"))[0] == 1  # nor is such a log sealed further

    status, out = await run_audit("verify", "--head", f"seq={shipped}")
    assert status == 1
    assert "the chain ends at seq 3 but seq 6 was sealed" in out


async def test_the_running_sealer_keeps_its_head_when_the_file_and_the_last_rows_go(
    app, session_factory, settings, run_audit
) -> None:
    ids = await write_rows(session_factory, 6)
    await seal_round(app)
    settings.audit_head_file.unlink()
    await sql(session_factory, "DELETE FROM audit_event WHERE id > :keep", keep=ids[2])

    assert await seal_round(app) == 0
    assert "the chain ends at seq 3 but seq 6 was sealed" in (app.state.audit_sealer.problem or "")
    status, out = await run_audit("verify")  # the sealer wrote the head it knew back
    assert status == 1
    assert "the chain ends at seq 3 but seq 6 was sealed" in out


async def test_a_head_on_record_with_another_digest_is_reported(
    app, session_factory, settings, run_audit
) -> None:
    await write_rows(session_factory, 4)
    await seal_round(app)
    seq, digest = settings.audit_head_file.read_text().split()[:2]
    other = "0" * 64 if digest != "0" * 64 else "1" * 64
    assert (await run_audit("verify", "--head", f"{seq}:{digest}"))[0] == 0

    status, out = await run_audit("verify", "--head", f"{seq}:{other}")
    assert status == 1
    assert f"does not match the recorded head {seq}:{other}" in out

    settings.audit_head_file.write_text(f"{seq} {other}\n")
    status, out = await run_audit("verify")
    assert status == 1 and "does not match the recorded head" in out
    assert await seal_round(app) == 0  # nor does the sealer extend a chain that no longer matches


async def test_verify_only_reads_and_seal_verifies_first(offline_writer, settings, run_audit) -> None:
    # Verifying a log nobody has sealed yet seals nothing and records no head.
    ids = await write_rows(offline_writer, 3)
    status, out = await run_audit("verify")
    assert status == 0, out
    assert "3 row(s) written but not sealed yet" in out
    assert await unsealed_ids(offline_writer) == ids
    assert not settings.audit_head_file.exists()

    status, out = await run_audit("seal")
    assert status == 0, out
    assert "sealed 3 row(s); head seq=3" in out
    assert await unsealed_ids(offline_writer) == []

    # An edited log is not sealed further.
    await sql(offline_writer, "UPDATE audit_event SET outcome = 'failure' WHERE id = :v", v=ids[1])
    more = await write_rows(offline_writer, 2)
    status, out = await run_audit("seal")
    assert status == 1
    assert out.startswith(f"audit log TAMPERED: row id {ids[1]}: contents do not match the chain"), out
    assert await unsealed_ids(offline_writer) == more
