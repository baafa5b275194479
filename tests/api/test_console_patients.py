"""The console's frame and patient search: a provider finds patients of the
clinic by name, date of birth or MRN (their own first), every search is audited
per patient shown, a chart outside their care opens only after a typed
cross-cover reason; help-desk staff, admins and patients cannot search. The
console names the person as the clinic does, with their credentials."""

from __future__ import annotations

from datetime import date
from typing import Any

from rtc_server.auth.models import Role
from tests.api.test_refills import (
    ask,
    audit_rows,
    make_clinic,
    provider,
    signed_in,
)
from tests.harness import create_patient, csrf_client


async def hits(client: Any, **params: Any) -> list[tuple[str, str]]:
    r = await client.get("/api/v1/console/patients", params=params)
    assert r.status_code == 200, r.text
    return [(p["name"], p["access"]) for p in r.json()]


async def test_provider_finds_patients_by_name_birth_date_or_mrn_their_own_first(
    app, session_factory,
) -> None:
    # Maria Lopez (1990-05-01, RCC-100001) is Dr. Marsh's patient.
    c = await make_clinic(app, session_factory)
    await create_patient(session_factory, given="Mario", family="Lopez-Garcia", birth=date(1985, 2, 3),
                         mrn="RCC-100002")
    await create_patient(session_factory, given="Ana", family="Lopez", birth=date(1990, 5, 1),
                         mrn="RCC-100003")
    assert await hits(c.dr, q="lopez") == [("Maria Lopez", "care_team"), ("Ana Lopez", "none"),
                                           ("Mario Lopez-Garcia", "none")]
    assert await hits(c.dr, q="mar lop") == [("Maria Lopez", "care_team"), ("Mario Lopez-Garcia", "none")]
    assert await hits(c.dr, q="Lopez, Ana") == [("Ana Lopez", "none")]
    assert await hits(c.dr, q="garcia") == [("Mario Lopez-Garcia", "none")]
    assert await hits(c.dr, q="rcc-100002") == [("Mario Lopez-Garcia", "none")]
    same_day = [("Maria Lopez", "care_team"), ("Ana Lopez", "none")]
    assert await hits(c.dr, birth_date="1990-05-01") == same_day
    assert await hits(c.dr, q="lopez", birth_date="1985-02-03") == [("Mario Lopez-Garcia", "none")]
    assert await hits(c.dr, q="nobody") == []
    r = await c.dr.get("/api/v1/console/patients", params={"q": "l"})
    assert r.status_code == 422
    r = await c.dr.get("/api/v1/console/patients", params={"q": "%%"})
    assert r.status_code == 422

    rows = await audit_rows(session_factory, "patient.search")
    assert len(rows) == 3 + 2 + 1 + 1 + 1 + 2 + 1 + 1  # one per patient shown, one for nothing found
    assert len([e for e in rows if e.patient_id == c.maria_id]) == 3
    assert [e.resource for e in rows if e.patient_id is None] == ["results:0"]
    assert all("lopez" not in (e.resource or "").lower() for e in rows)  # what was typed is not stored


async def test_a_chart_outside_the_providers_care_opens_only_with_a_reason(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    okafor = await provider(app, session_factory, "dr.okafor", c.okafor)
    assert await hits(okafor, q="maria") == [("Maria Lopez", "none")]
    r = await okafor.get(f"/api/v1/console/patients/{c.maria_id}/chart")
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_cover_required"
    r = await okafor.post(f"/api/v1/console/patients/{c.maria_id}/cross-cover", json={"reason": "short"})
    assert r.status_code == 422
    r = await okafor.post(f"/api/v1/console/patients/{c.maria_id}/cross-cover",
                          json={"reason": "On call for Dr. Marsh tonight"})
    assert r.status_code == 201
    assert await hits(okafor, q="maria") == [("Maria Lopez", "cross_cover")]
    assert (await okafor.get(f"/api/v1/console/patients/{c.maria_id}/chart")).status_code == 200
    assert (await c.dr.get(f"/api/v1/console/patients/{c.maria_id}/chart")).status_code == 200
    reads = await audit_rows(session_factory, "chart.read")
    assert [e.outcome for e in reads] == ["denied", "success", "success"]


async def test_staff_admins_and_patients_cannot_search(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    admin = await signed_in(app, session_factory, "clinic.admin", role=Role.admin)
    for client in (staff, admin, c.maria):
        assert (await client.get("/api/v1/console/patients", params={"q": "lopez"})).status_code == 403
    assert (await (await csrf_client(app)).get("/api/v1/console/patients?q=lopez")).status_code == 401
    rows = await audit_rows(session_factory, "patient.search")
    assert [(e.outcome, e.actor_role) for e in rows] == [
        ("denied", "staff"), ("denied", "admin"), ("denied", "patient")]


async def test_the_console_names_the_person_with_their_credentials_and_what_waits(
    app, session_factory,
) -> None:
    c = await make_clinic(app, session_factory)
    await ask(c.maria, c.atorvastatin, c.harbor)
    me = (await c.dr.get("/api/v1/console/me")).json()
    assert (me["name"], me["credentials"]) == ("Dr. Elena Marsh, MD", "MD")
    assert me["specialty"] == "Family Medicine"
    assert me["role"] == "provider" and me["counts"] == {"refills": 1, "tickets": None}

    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff, display_name="Dana Reyes")
    await c.maria.post("/api/v1/help/tickets",
                       json={"subject": "Question", "message": "How do I print my record?"})
    me = (await staff.get("/api/v1/console/me")).json()
    assert (me["name"], me["credentials"]) == ("Dana Reyes", None)
    assert me["role_label"] == "Front desk and help desk"
    assert me["counts"] == {"refills": None, "tickets": 1}
    assert (await c.maria.get("/api/v1/console/me")).status_code == 403
    [refused] = await audit_rows(session_factory, "console.me")
    assert (refused.outcome, refused.actor_role) == ("denied", "patient")
