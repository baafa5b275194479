"""The audit log: sign-ins leave rows, admins (only) can search them, a
search is itself audited, and ``rtc-server audit verify`` catches an edit."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlmodel import select

from rtc_server import cli
from rtc_server.audit import AuditEvent
from rtc_server.auth.models import Role
from tests.harness import PASSWORD, create_user, enrolled_staff, log_in


async def test_sign_ins_and_failures_are_recorded(client, session_factory, secrets_seen) -> None:
    secrets_seen.add(PASSWORD)
    user_id = await create_user(session_factory, "maria.lopez", role=Role.patient)
    await log_in(client, "maria.lopez", "Wrong-Pass-31")
    await log_in(client, "nobody.at.all", "Wrong-Pass-31")
    await log_in(client, "maria.lopez")
    async with session_factory() as s:
        rows = (await s.exec(select(AuditEvent).order_by(AuditEvent.id))).all()
    logins = [(r.action, r.outcome, r.actor_id) for r in rows if r.action.startswith("login.")]
    assert logins == [
        ("login.failure", "failure", user_id),
        ("login.failure", "failure", None),
        ("login.success", "success", user_id),
    ]
    for r in rows:
        assert "nobody" not in (r.resource or "")
        assert PASSWORD not in (r.resource or "")
        assert r.request_id and r.ip == "127.0.0.1"


async def test_admin_searches_the_log_with_filters(
    client, make_client, session_factory, secrets_seen
) -> None:
    secrets_seen.add(PASSWORD)
    patient_id = await create_user(session_factory, "maria.lopez", role=Role.patient)
    await log_in(client, "maria.lopez", "Wrong-Pass-31")
    await log_in(client, "maria.lopez")
    admin, admin_id = await enrolled_staff(make_client, session_factory, secrets_seen)

    r = await admin.get("/api/v1/admin/audit", params={"actor": "Maria.Lopez"})
    assert r.status_code == 200
    rows = r.json()["rows"]
    assert [x["action"] for x in rows] == ["login.success", "login.failure"]  # newest first
    assert all(x["actor_username"] == "maria.lopez" and x["actor_id"] == patient_id for x in rows)
    assert set(rows[0]) == {"id", "at", "actor_id", "actor_username", "patient_id", "action",
                            "resource", "outcome", "request_id", "ip"}

    by_id = (await admin.get("/api/v1/admin/audit", params={"actor": str(patient_id)})).json()["rows"]
    assert [x["id"] for x in by_id] == [x["id"] for x in rows]
    failures = (await admin.get("/api/v1/admin/audit",
                                params={"action": "login.", "outcome": "failure"})).json()["rows"]
    assert [x["action"] for x in failures] == ["login.failure"]
    mfa_rows = (await admin.get("/api/v1/admin/audit", params={"action": "mfa."})).json()["rows"]
    assert {x["action"] for x in mfa_rows} >= {"mfa.enable"}
    assert all(x["action"].startswith("mfa.") for x in mfa_rows)
    # A LIKE wildcard in the prefix is taken literally.
    assert (await admin.get("/api/v1/admin/audit", params={"action": "%"})).json()["rows"] == []
    nobody = (await admin.get("/api/v1/admin/audit", params={"actor": "no.such.user"})).json()
    assert nobody == {"rows": [], "next_before_id": None}
    future = (await admin.get("/api/v1/admin/audit",
                              params={"since": "2999-01-01T00:00:00Z"})).json()["rows"]
    assert future == []
    past = (await admin.get("/api/v1/admin/audit", params={"until": "2000-01-01T00:00:00"})).json()["rows"]
    assert past == []

    # Paging: two at a time, following next_before_id, visits every row once.
    seen: list[int] = []
    before = None
    while True:
        params = {"limit": "2", **({"before_id": str(before)} if before else {})}
        page = (await admin.get("/api/v1/admin/audit", params=params)).json()
        seen += [x["id"] for x in page["rows"]]
        before = page["next_before_id"]
        if before is None:
            break
    assert seen == sorted(set(seen), reverse=True)

    bad = await admin.get("/api/v1/admin/audit", params={"limit": "501", "since": "yesterday"})
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["error"]["fields"]} == {"limit", "since"}

    async with session_factory() as s:
        searches = (await s.exec(select(AuditEvent).where(AuditEvent.action == "audit.search"))).all()
    assert searches and all(x.actor_id == admin_id for x in searches)


async def test_only_admins_may_search(client, make_client, session_factory, secrets_seen) -> None:
    secrets_seen.add(PASSWORD)
    await create_user(session_factory, "maria.lopez", role=Role.patient)
    await log_in(client, "maria.lopez")
    r = await client.get("/api/v1/admin/audit")
    assert r.status_code == 403
    staff, _ = await enrolled_staff(make_client, session_factory, secrets_seen,
                                    username="front.desk", role=Role.staff)
    assert (await staff.get("/api/v1/admin/audit")).status_code == 403
    anonymous = await make_client()
    assert (await anonymous.get("/api/v1/admin/audit")).status_code == 401
    async with session_factory() as s:
        denied = (await s.exec(select(AuditEvent).where(AuditEvent.action == "audit.search"))).all()
    assert [d.outcome for d in denied] == ["denied", "denied"]


async def test_audit_verify_names_an_edited_row(
    client, session_factory, settings, monkeypatch, capsys, secrets_seen
) -> None:
    secrets_seen.add(PASSWORD)
    await create_user(session_factory, "maria.lopez", role=Role.patient)
    await log_in(client, "maria.lopez", "Wrong-Pass-31")
    await log_in(client, "maria.lopez")
    monkeypatch.setenv("RTC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("RTC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RTC_SECRET_KEY", settings.secret_key)

    # The CLI runs its own event loop, so it goes to a thread.
    assert await asyncio.to_thread(cli.main, ["audit", "seal"]) == 0
    assert "audit log intact" in capsys.readouterr().out

    async with session_factory() as s:
        failure = (await s.exec(select(AuditEvent).where(AuditEvent.action == "login.failure"))).one()
        assert failure.seq is not None  # sealed into the chain
        await s.exec(text("UPDATE audit_event SET outcome='success' WHERE id=:id").bindparams(id=failure.id))
        await s.commit()
    assert await asyncio.to_thread(cli.main, ["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"row id {failure.id}" in out
    assert "TAMPERED" in out
