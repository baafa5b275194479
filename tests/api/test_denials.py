"""Every refusal leaves a ``denied`` audit row naming who was refused what,
with the request id (finding 12): the staff queue, other people's sessions,
the admin pages. Services raise the refusal; the route writes the row."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from rtc_server.audit import AuditEvent
from rtc_server.auth.models import Role
from tests.harness import create_signed_in_user


async def denied_rows(session_factory: Any) -> list[AuditEvent]:
    async with session_factory() as s:
        return list((await s.exec(select(AuditEvent).where(AuditEvent.outcome == "denied")
                                  .order_by(col(AuditEvent.id)))).all())


@pytest.mark.parametrize("role", [Role.patient, Role.provider])
async def test_the_staff_queue_refuses_and_audits_patients_and_providers(
    make_client: Any, session_factory: Any, settings: Any, secrets_seen: set[str], role: Role
) -> None:
    client: httpx.AsyncClient = await make_client()
    token = await create_signed_in_user(session_factory, settings, "not.staff", role=role)
    secrets_seen.add(token)
    client.cookies.set("rtc_session", token)
    listed = await client.get("/api/v1/staff/verifications")
    approved = await client.post("/api/v1/staff/verifications/7/approve", json={"note": "ok"})
    rejected = await client.post("/api/v1/staff/verifications/7/reject", json={"reason": "no"})
    assert [r.status_code for r in (listed, approved, rejected)] == [403, 403, 403]
    rows = await denied_rows(session_factory)
    assert [r.request_id for r in rows] == [
        r.json()["error"]["request_id"] for r in (listed, approved, rejected)]
    assert {(r.actor_id, r.actor_role) for r in rows} == {(rows[0].actor_id, role)}
    assert rows[0].actor_id is not None and all(r.action and r.resource for r in rows)


async def test_admin_pages_refuse_and_audit_other_roles_once(
    make_client: Any, session_factory: Any, settings: Any, secrets_seen: set[str]
) -> None:
    client: httpx.AsyncClient = await make_client()
    token = await create_signed_in_user(session_factory, settings, "front.desk", role=Role.staff)
    secrets_seen.add(token)
    client.cookies.set("rtc_session", token)
    r = await client.get("/api/v1/admin/audit")
    assert r.status_code == 403
    [row] = await denied_rows(session_factory)
    assert (row.action, row.actor_role, row.request_id) == (
        "audit.search", "staff", r.json()["error"]["request_id"])
