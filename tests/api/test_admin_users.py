"""Admins manage accounts: list them, change a role (audited, never their own,
consistent with the patient link, forcing two-factor enrolment for staff
roles) and lift a sign-in lock."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from rtc_server.audit import AuditEvent
from rtc_server.auth import login
from rtc_server.auth.models import Role, User
from tests.harness import PASSWORD, create_patient, create_user, enrol_mfa, enrolled_staff, sign_in


async def make_user(session_factory, username: str, role: Role, *, with_patient: bool = False) -> int:
    """An account listed under its username; ``with_patient`` links it to a record on file."""
    patient_id = await create_patient(session_factory) if with_patient else None
    return await create_user(session_factory, username, role=role, display_name=username,
                             patient_id=patient_id)


async def admin_client(make_client, session_factory, secrets_seen):
    """A full admin session (enrolled in two-factor at first sign-in)."""
    return await enrolled_staff(make_client, session_factory, secrets_seen, display_name="site.admin")


async def audit_rows(session_factory, action: str) -> list[AuditEvent]:
    async with session_factory() as s:
        return list((await s.exec(select(AuditEvent).where(AuditEvent.action == action))).all())


async def test_admin_lists_users_by_role_and_username_prefix(
    make_client, session_factory, secrets_seen
) -> None:
    admin, _ = await admin_client(make_client, session_factory, secrets_seen)
    ids = [await make_user(session_factory, f"desk.{n}", Role.staff) for n in range(3)]
    await make_user(session_factory, "maria.lopez", Role.patient, with_patient=True)

    r = await admin.get("/api/v1/admin/users", params={"role": "staff", "limit": 2})
    assert r.status_code == 200
    page = r.json()
    assert [row["id"] for row in page["rows"]] == [ids[2], ids[1]]  # newest first
    row = page["rows"][0]
    assert set(row) == {"id", "username", "display_name", "role", "status", "mfa_enabled",
                        "created_at", "locked_until"}
    assert "password" not in r.text and "mfa_secret" not in r.text
    more = await admin.get("/api/v1/admin/users",
                           params={"role": "staff", "limit": 2, "before_id": page["next_before_id"]})
    assert [row["id"] for row in more.json()["rows"]] == [ids[0]]
    assert more.json()["next_before_id"] is None

    by_name = await admin.get("/api/v1/admin/users", params={"q": "MARIA"})
    assert [row["username"] for row in by_name.json()["rows"]] == ["maria.lopez"]
    everyone = await admin.get("/api/v1/admin/users", params={"role": ""})
    assert len(everyone.json()["rows"]) == 5
    bad = await admin.get("/api/v1/admin/users", params={"role": "wizard", "limit": 500})
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["error"]["fields"]} == {"role", "limit"}
    assert await audit_rows(session_factory, "user.search")


async def test_admin_changes_a_role_and_it_is_audited(
    client, make_client, session_factory, secrets_seen
) -> None:
    admin, admin_id = await admin_client(make_client, session_factory, secrets_seen)
    staff_id = await make_user(session_factory, "front.desk", Role.staff)
    # Signed in mid-enrolment when promoted: that session must end.
    assert (await sign_in(client, "front.desk", secrets_seen))["status"] == "mfa_enroll_required"

    r = await admin.post(f"/api/v1/admin/users/{staff_id}/role",
                         json={"role": "admin", "current_password": PASSWORD})
    assert r.status_code == 200
    assert r.json()["role"] == "admin" and r.json()["id"] == staff_id
    assert (await client.get("/api/v1/auth/session")).status_code == 401
    async with session_factory() as s:
        assert (await s.get(User, staff_id)).role == Role.admin
    [row] = await audit_rows(session_factory, "role.change")
    assert row.resource == f"user:{staff_id} staff->admin"
    assert row.actor_id == admin_id and row.outcome == "success"

    # The next sign-in must enrol in two-factor.
    fresh = await make_client()
    assert (await sign_in(fresh, "front.desk", secrets_seen))["status"] == "mfa_enroll_required"

    bad = await admin.post(f"/api/v1/admin/users/{staff_id}/role", json={"role": "janitor"})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "role"
    missing = await admin.post("/api/v1/admin/users/999999/role", json={"role": "staff"})
    assert missing.status_code == 404


async def test_promoting_an_account_with_two_factor_keeps_its_sessions(
    client, make_client, session_factory, secrets_seen
) -> None:
    admin, _ = await admin_client(make_client, session_factory, secrets_seen)
    provider_id = await make_user(session_factory, "dr.okafor", Role.provider)
    await sign_in(client, "dr.okafor", secrets_seen)
    await enrol_mfa(client, secrets_seen)

    r = await admin.post(f"/api/v1/admin/users/{provider_id}/role", json={"role": "staff"})
    assert r.status_code == 200
    session = (await client.get("/api/v1/auth/session")).json()
    assert session["user"]["role"] == "staff"


async def test_only_admins_manage_users(client, make_client, session_factory, secrets_seen) -> None:
    await admin_client(make_client, session_factory, secrets_seen)
    target = await make_user(session_factory, "front.desk", Role.staff)
    await make_user(session_factory, "maria.lopez", Role.patient, with_patient=True)
    await sign_in(client, "maria.lopez", secrets_seen)
    assert (await client.get("/api/v1/admin/users")).status_code == 403
    r = await client.post(f"/api/v1/admin/users/{target}/role", json={"role": "admin"})
    assert r.status_code == 403
    assert (await client.post(f"/api/v1/admin/users/{target}/unlock")).status_code == 403
    async with session_factory() as s:
        assert (await s.get(User, target)).role == Role.staff
    denied = await audit_rows(session_factory, "role.change")
    assert [(d.outcome, d.resource) for d in denied] == [("denied", f"user:{target}")]
    anonymous = await make_client()
    assert (await anonymous.get("/api/v1/admin/users")).status_code == 401


async def test_an_admin_cannot_change_their_own_role(make_client, session_factory, secrets_seen) -> None:
    admin, admin_id = await admin_client(make_client, session_factory, secrets_seen)
    r = await admin.post(f"/api/v1/admin/users/{admin_id}/role", json={"role": "staff"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "cannot_change_own_role"
    async with session_factory() as s:
        assert (await s.get(User, admin_id)).role == Role.admin


async def test_roles_follow_the_patient_link(make_client, session_factory, secrets_seen) -> None:
    admin, _ = await admin_client(make_client, session_factory, secrets_seen)
    patient_user = await make_user(session_factory, "maria.lopez", Role.patient, with_patient=True)
    staff_user = await make_user(session_factory, "front.desk", Role.staff)

    for role in ("staff", "provider", "admin"):
        r = await admin.post(f"/api/v1/admin/users/{patient_user}/role", json={"role": role})
        assert r.status_code == 422
        assert r.json()["error"]["fields"][0]["field"] == "role"
    r = await admin.post(f"/api/v1/admin/users/{staff_user}/role", json={"role": "patient"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "role"
    async with session_factory() as s:
        assert (await s.get(User, patient_user)).role == Role.patient
        assert (await s.get(User, staff_user)).role == Role.staff
    refused = await audit_rows(session_factory, "role.change")
    assert [(row.outcome, row.resource) for row in refused] == [
        ("failure", f"user:{patient_user} patient->{role}") for role in ("staff", "provider", "admin")
    ] + [("failure", f"user:{staff_user} staff->patient")]


async def test_admin_unlocks_a_locked_account(
    client, make_client, session_factory, secrets_seen, monkeypatch
) -> None:
    admin, admin_id = await admin_client(make_client, session_factory, secrets_seen)
    user_id = await make_user(session_factory, "maria.lopez", Role.patient, with_patient=True)
    for _ in range(login.LOCK_AFTER):
        await client.post("/api/v1/auth/login", json={"username": "maria.lopez", "password": "Wrong-Pass-31"})
    assert (await client.post("/api/v1/auth/login",
                              json={"username": "maria.lopez", "password": PASSWORD})).status_code == 401
    listed = (await admin.get("/api/v1/admin/users", params={"q": "maria"})).json()["rows"]
    assert listed[0]["locked_until"] is not None

    r = await admin.post(f"/api/v1/admin/users/{user_id}/unlock")
    assert r.status_code == 200
    assert r.json()["locked_until"] is None
    async with session_factory() as s:
        user = await s.get(User, user_id)
        assert user.locked_until is None and user.failed_logins == 0
    fresh = await make_client()
    assert (await sign_in(fresh, "maria.lopez", secrets_seen))["status"] == "ok"
    [row] = await audit_rows(session_factory, "account.unlock")
    assert row.resource == f"user:{user_id}" and row.actor_id == admin_id
    assert (await admin.post("/api/v1/admin/users/999999/unlock")).status_code == 404


# --- two admins at once, re-authentication, refusals audited -----------------

BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


async def admin_count(session_factory) -> int:
    async with session_factory() as s:
        return len((await s.exec(select(User).where(User.role == Role.admin))).all())


@BOTH_BACKENDS
async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    make_client, session_factory, secrets_seen
) -> None:
    first, first_id = await enrolled_staff(make_client, session_factory, secrets_seen,
                                           username="admin.one")
    second, second_id = await enrolled_staff(make_client, session_factory, secrets_seen,
                                             username="admin.two")
    body = {"role": "staff", "current_password": PASSWORD}

    replies = await asyncio.gather(
        first.post(f"/api/v1/admin/users/{second_id}/role", json=body),
        second.post(f"/api/v1/admin/users/{first_id}/role", json=body),
    )

    statuses = sorted(r.status_code for r in replies)
    assert statuses[0] == 200 and statuses[1] in (403, 409), [r.text for r in replies]
    assert await admin_count(session_factory) == 1
    outcomes = sorted(row.outcome for row in await audit_rows(session_factory, "role.change"))
    assert outcomes in (["denied", "success"], ["failure", "success"])


async def test_the_only_admin_stays_admin(make_client, session_factory, secrets_seen) -> None:
    # With no other admin there is no one who may demote this one (``last_admin``
    # guards the UPDATE too, should that ever change).
    admin, admin_id = await admin_client(make_client, session_factory, secrets_seen)
    r = await admin.post(f"/api/v1/admin/users/{admin_id}/role",
                         json={"role": "staff", "current_password": PASSWORD})
    assert r.status_code == 409
    assert r.json()["error"]["code"] in ("cannot_change_own_role", "last_admin")
    assert await admin_count(session_factory) == 1


async def test_role_changes_to_or_from_admin_need_the_current_password(
    make_client, session_factory, secrets_seen, monkeypatch
) -> None:
    admin, admin_id = await admin_client(make_client, session_factory, secrets_seen)
    staff_id = await make_user(session_factory, "front.desk", Role.staff)
    url = f"/api/v1/admin/users/{staff_id}/role"

    missing = await admin.post(url, json={"role": "admin"})
    assert missing.status_code == 422
    assert missing.json()["error"]["fields"][0]["field"] == "current_password"
    secrets_seen.add("Wrong-Pass-31")
    wrong = await admin.post(url, json={"role": "admin", "current_password": "Wrong-Pass-31"})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["fields"][0]["field"] == "current_password"
    async with session_factory() as s:
        assert (await s.get(User, staff_id)).role == Role.staff
        # A wrong password counts toward the lockout like a failed log-in.
        assert (await s.get(User, admin_id)).failed_logins == 1
    reauth = await audit_rows(session_factory, "account.reauth_failure")
    assert [row.actor_id for row in reauth] == [admin_id]

    ok = await admin.post(url, json={"role": "admin", "current_password": PASSWORD})
    assert ok.status_code == 200 and ok.json()["role"] == "admin"
    back = await admin.post(url, json={"role": "staff"})
    assert back.status_code == 422
    assert back.json()["error"]["fields"][0]["field"] == "current_password"
    back = await admin.post(url, json={"role": "staff", "current_password": PASSWORD})
    assert back.status_code == 200 and back.json()["role"] == "staff"
    # Between staff roles no password is asked.
    provider = await admin.post(url, json={"role": "provider"})
    assert provider.status_code == 200
    outcomes = [(row.outcome, row.resource) for row in await audit_rows(session_factory, "role.change")]
    assert outcomes == [
        ("denied", f"user:{staff_id} staff->admin"),
        ("denied", f"user:{staff_id} staff->admin"),
        ("success", f"user:{staff_id} staff->admin"),
        ("denied", f"user:{staff_id} admin->staff"),
        ("success", f"user:{staff_id} admin->staff"),
        ("success", f"user:{staff_id} staff->provider"),
    ]


async def test_refused_role_changes_are_audited(make_client, session_factory, secrets_seen) -> None:
    admin, admin_id = await admin_client(make_client, session_factory, secrets_seen)
    patient_user = await make_user(session_factory, "maria.lopez", Role.patient, with_patient=True)
    staff_user = await make_user(session_factory, "front.desk", Role.staff)

    assert (await admin.post("/api/v1/admin/users/999999/role",
                             json={"role": "staff"})).status_code == 404
    assert (await admin.post(f"/api/v1/admin/users/{patient_user}/role",
                             json={"role": "provider"})).status_code == 422
    same = await admin.post(f"/api/v1/admin/users/{staff_user}/role", json={"role": "staff"})
    assert same.status_code == 200 and same.json()["role"] == "staff"

    rows = await audit_rows(session_factory, "role.change")
    assert [(row.outcome, row.resource) for row in rows] == [
        ("failure", "user:999999"),
        ("failure", f"user:{patient_user} patient->provider"),
        ("failure", f"user:{staff_user} staff->staff"),
    ]
    assert {row.actor_id for row in rows} == {admin_id}


async def test_visit_guests_are_not_clinic_accounts(make_client, session_factory, secrets_seen) -> None:
    """A guest account (made by a visit invitation) is not listed, cannot be given
    a clinic role, and no account can be made a guest."""
    admin, _ = await admin_client(make_client, session_factory, secrets_seen)
    guest = await make_user(session_factory, "guest.interpreter", Role.guest)
    staff_user = await make_user(session_factory, "front.desk", Role.staff)
    listed = (await admin.get("/api/v1/admin/users")).json()
    names = [u["username"] for u in listed["rows"]]
    assert "front.desk" in names and "guest.interpreter" not in names
    r = await admin.post(f"/api/v1/admin/users/{guest}/role", json={"role": "staff"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "role"
    r = await admin.post(f"/api/v1/admin/users/{staff_user}/role", json={"role": "guest"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "role"
    async with session_factory() as s:
        assert (await s.get(User, guest)).role == Role.guest
        assert (await s.get(User, staff_user)).role == Role.staff
