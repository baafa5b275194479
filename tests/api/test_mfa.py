"""Two-factor authentication: enforced for providers (enrolment at first
log-in), optional for patients, one-time recovery codes, no code replay."""

from __future__ import annotations

import time

import pyotp
from sqlmodel import select

from rtc_server.audit import AuditEvent
from rtc_server.auth import login
from rtc_server.auth.models import Role, User
from tests.harness import PASSWORD, create_user, sign_in


def code_at(secret: str, offset_steps: int = 0) -> str:
    """The code for the current 30-second step, or a neighbouring one."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def test_provider_must_enrol_then_always_gives_a_code(
    client, make_client, session_factory, secrets_seen
) -> None:
    await create_user(session_factory, "dr.okafor", role=Role.provider)

    # First log-in: password accepted, but only enrolment is open.
    assert await sign_in(client, "dr.okafor", secrets_seen) == {"status": "mfa_enroll_required"}
    partial = client.cookies["rtc_session"]
    assert (await client.get("/api/v1/account")).status_code == 401
    assert (await client.get("/api/v1/account/sessions")).status_code == 401
    assert (await client.get("/api/v1/admin/audit")).status_code == 401
    session = (await client.get("/api/v1/auth/session")).json()
    assert session["stage"] == "mfa_enroll"

    setup = (await client.post("/api/v1/account/mfa/setup")).json()
    secret = setup["secret"]
    secrets_seen.add(secret)
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    assert "issuer=Riverside%20Community%20Clinic" in setup["otpauth_uri"]
    assert setup["qr_svg"].startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in setup["qr_svg"]

    bad = await client.post("/api/v1/account/mfa/confirm", json={"code": "000000"})
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["field"] == "code"

    confirm = await client.post("/api/v1/account/mfa/confirm", json={"code": code_at(secret)})
    assert confirm.status_code == 200
    codes = confirm.json()["recovery_codes"]
    secrets_seen.update(codes)
    assert len(codes) == 10 and len(set(codes)) == 10
    # The enrolment session was replaced by a new full one.
    assert client.cookies["rtc_session"] != partial
    assert (await client.get("/api/v1/auth/session")).json()["stage"] == "full"
    assert (await client.get("/api/v1/account")).json()["mfa_enabled"] is True
    stale = await make_client()
    stale.cookies.set("rtc_session", partial)
    assert (await stale.get("/api/v1/auth/session")).status_code == 401

    # Next log-in: a code is required; a wrong one fails, the right one works.
    other = await make_client()
    assert await sign_in(other, "dr.okafor", secrets_seen) == {"status": "mfa_required"}
    assert (await other.get("/api/v1/account")).status_code == 401
    wrong = await other.post("/api/v1/auth/login/mfa", json={"code": "123456"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_code"
    pending = other.cookies["rtc_session"]
    # The confirm code's time step is spent; the next step's code (still valid) is fresh.
    ok = await other.post("/api/v1/auth/login/mfa", json={"code": code_at(secret, 1)})
    assert ok.status_code == 200
    assert ok.json()["status"] == "ok" and ok.json()["user"]["role"] == "provider"
    assert other.cookies["rtc_session"] != pending
    assert (await other.get("/api/v1/account")).status_code == 200

    # A recovery code works exactly once.
    third = await make_client()
    await sign_in(third, "dr.okafor", secrets_seen)
    assert (await third.post("/api/v1/auth/login/mfa", json={"code": codes[0]})).status_code == 200
    fourth = await make_client()
    await sign_in(fourth, "dr.okafor", secrets_seen)
    again = await fourth.post("/api/v1/auth/login/mfa", json={"code": codes[0]})
    assert again.status_code == 401
    ok2 = await fourth.post("/api/v1/auth/login/mfa", json={"code": codes[1].upper()})
    assert ok2.status_code == 200

    async with session_factory() as s:
        actions = [e.action for e in (await s.exec(select(AuditEvent))).all()]
    assert "mfa.enable" in actions
    assert actions.count("mfa.recovery_used") == 2


async def test_a_totp_code_cannot_be_replayed(client, make_client, session_factory, secrets_seen) -> None:
    await create_user(session_factory, "dr.okafor", role=Role.provider)
    await sign_in(client, "dr.okafor", secrets_seen)
    secret = (await client.post("/api/v1/account/mfa/setup")).json()["secret"]
    secrets_seen.add(secret)
    await client.post("/api/v1/account/mfa/confirm", json={"code": code_at(secret, -1)})

    first = await make_client()
    await sign_in(first, "dr.okafor", secrets_seen)
    code = code_at(secret)
    assert (await first.post("/api/v1/auth/login/mfa", json={"code": code})).status_code == 200
    second = await make_client()
    await sign_in(second, "dr.okafor", secrets_seen)
    assert (await second.post("/api/v1/auth/login/mfa", json={"code": code})).status_code == 401
    # An older step than one already used is refused too.
    older = await second.post("/api/v1/auth/login/mfa", json={"code": code_at(secret, -1)})
    assert older.status_code == 401


async def test_wrong_codes_end_the_partial_session(
    client, session_factory, secrets_seen, monkeypatch
) -> None:
    user_id = await create_user(session_factory, "pat.rivera", role=Role.patient)
    await sign_in(client, "pat.rivera", secrets_seen)
    secret = (await client.post("/api/v1/account/mfa/setup",
                                json={"current_password": PASSWORD})).json()["secret"]
    secrets_seen.add(secret)
    await client.post("/api/v1/account/mfa/confirm", json={"code": code_at(secret)})
    await client.post("/api/v1/auth/logout")

    assert await sign_in(client, "pat.rivera", secrets_seen) == {"status": "mfa_required"}
    for _ in range(login.MFA_ATTEMPTS_PER_SESSION):
        r = await client.post("/api/v1/auth/login/mfa", json={"code": "999999"})
        assert r.status_code == 401
    # The partial session is gone: even a right code now needs a new log-in.
    r = await client.post("/api/v1/auth/login/mfa", json={"code": code_at(secret, 1)})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    # And the code failures count toward the account lock like password failures.
    async with session_factory() as s:
        assert (await s.get(User, user_id)).locked_until is not None


async def test_patient_turns_two_factor_on_and_off(client, session_factory, smtp, secrets_seen) -> None:
    user_id = await create_user(session_factory, "pat.rivera", role=Role.patient)
    assert (await sign_in(client, "pat.rivera", secrets_seen))["status"] == "ok"
    account = (await client.get("/api/v1/account")).json()
    assert account["mfa_enabled"] is False and account["mfa_required"] is False

    secret = (await client.post("/api/v1/account/mfa/setup",
                                json={"current_password": PASSWORD})).json()["secret"]
    secrets_seen.add(secret)
    r = await client.post("/api/v1/account/mfa/confirm", json={"code": code_at(secret)})
    assert r.status_code == 200
    assert (await client.get("/api/v1/account")).json()["mfa_enabled"] is True
    async with session_factory() as s:
        stored = (await s.get(User, user_id)).mfa_secret
    assert stored and secret not in stored  # encrypted at rest

    # A second set-up while on is refused.
    again = await client.post("/api/v1/account/mfa/setup", json={"current_password": PASSWORD})
    assert again.status_code == 409

    r = await client.post("/api/v1/account/mfa/disable",
                          json={"current_password": "Wrong-Pass-77", "code": code_at(secret, 1)})
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "current_password"
    r = await client.post("/api/v1/account/mfa/disable",
                          json={"current_password": PASSWORD, "code": "111111"})
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "code"
    r = await client.post("/api/v1/account/mfa/disable",
                          json={"current_password": PASSWORD, "code": code_at(secret, 1)})
    assert r.status_code == 204
    assert (await client.get("/api/v1/account")).json()["mfa_enabled"] is False
    await client.post("/api/v1/auth/logout")
    assert (await sign_in(client, "pat.rivera", secrets_seen))["status"] == "ok"
    async with session_factory() as s:
        actions = [e.action for e in (await s.exec(select(AuditEvent))).all()]
    assert "mfa.enable" in actions and "mfa.disable" in actions


async def test_staff_cannot_turn_two_factor_off(client, session_factory, secrets_seen) -> None:
    await create_user(session_factory, "front.desk", role=Role.staff)
    await sign_in(client, "front.desk", secrets_seen)
    secret = (await client.post("/api/v1/account/mfa/setup")).json()["secret"]
    secrets_seen.add(secret)
    await client.post("/api/v1/account/mfa/confirm", json={"code": code_at(secret)})
    r = await client.post("/api/v1/account/mfa/disable",
                          json={"current_password": PASSWORD, "code": code_at(secret, 1)})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "mfa_required_for_role"
    assert (await client.get("/api/v1/account")).json()["mfa_enabled"] is True


async def test_mfa_step_without_a_pending_session_is_unauthenticated(client) -> None:
    r = await client.post("/api/v1/auth/login/mfa", json={"code": "123456"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"


async def test_setup_from_a_full_session_needs_the_password(
    client, session_factory, secrets_seen, monkeypatch
) -> None:
    """A hijacked full session must not be able to turn two-factor on (and so
    control the owner's next sign-ins) without the password."""
    user_id = await create_user(session_factory, "pat.rivera", role=Role.patient)
    assert (await sign_in(client, "pat.rivera", secrets_seen))["status"] == "ok"

    missing = await client.post("/api/v1/account/mfa/setup")
    assert missing.status_code == 422
    assert [f["field"] for f in missing.json()["error"]["fields"]] == ["current_password"]
    assert "secret" not in missing.json()
    wrong = await client.post("/api/v1/account/mfa/setup", json={"current_password": "Wrong-Pass-77"})
    assert wrong.status_code == 422
    assert [f["field"] for f in wrong.json()["error"]["fields"]] == ["current_password"]
    async with session_factory() as s:
        user = await s.get(User, user_id)
        assert user.mfa_secret is None
        assert user.failed_logins == 1  # the wrong password counts toward the lock

    ok = await client.post("/api/v1/account/mfa/setup", json={"current_password": PASSWORD})
    assert ok.status_code == 200
    secrets_seen.add(ok.json()["secret"])


async def test_enrolment_at_first_login_needs_no_password_again(
    client, session_factory, secrets_seen
) -> None:
    await create_user(session_factory, "front.desk", role=Role.staff)
    assert (await sign_in(client, "front.desk", secrets_seen))["status"] == "mfa_enroll_required"
    r = await client.post("/api/v1/account/mfa/setup")
    assert r.status_code == 200
    secrets_seen.add(r.json()["secret"])


async def test_turning_two_factor_on_ends_the_other_sessions(
    client, make_client, session_factory, smtp, secrets_seen
) -> None:
    await create_user(session_factory, "pat.rivera", role=Role.patient)
    await sign_in(client, "pat.rivera", secrets_seen)
    other = await make_client()
    await sign_in(other, "pat.rivera", secrets_seen)
    assert (await other.get("/api/v1/account")).status_code == 200

    secret = (await client.post("/api/v1/account/mfa/setup",
                                json={"current_password": PASSWORD})).json()["secret"]
    secrets_seen.add(secret)
    r = await client.post("/api/v1/account/mfa/confirm", json={"code": code_at(secret)})
    assert r.status_code == 200
    secrets_seen.update(r.json()["recovery_codes"])
    assert (await other.get("/api/v1/account")).status_code == 401
    assert (await client.get("/api/v1/account")).status_code == 200
    await smtp.wait_for(1)
    [notice] = smtp.to("pat.rivera@example.org")
    assert "Two-factor authentication was turned on" in smtp.text(notice)
    assert notice.get_body(preferencelist=("html",)) is not None


async def test_signing_in_with_a_recovery_code_mails_a_notice(
    client, make_client, session_factory, smtp, secrets_seen
) -> None:
    await create_user(session_factory, "pat.rivera", display_name="<b>Pat</b> Rivera")
    await sign_in(client, "pat.rivera", secrets_seen)
    secret = (await client.post("/api/v1/account/mfa/setup",
                                json={"current_password": PASSWORD})).json()["secret"]
    secrets_seen.add(secret)
    r = await client.post("/api/v1/account/mfa/confirm", json={"code": code_at(secret)})
    codes = r.json()["recovery_codes"]
    secrets_seen.update(codes)
    await smtp.wait_for(1)  # the "two-factor is on" notice

    other = await make_client()
    assert (await sign_in(other, "pat.rivera", secrets_seen))["status"] == "mfa_required"
    assert (await other.post("/api/v1/auth/login/mfa", json={"code": codes[0]})).status_code == 200
    await smtp.wait_for(2)
    notice = smtp.to("pat.rivera@example.org")[-1]
    assert "a recovery code was used" in str(notice["Subject"])
    assert "recovery code was just used to sign in" in smtp.text(notice)
    assert codes[0] not in smtp.text(notice)
    html = notice.get_body(preferencelist=("html",)).get_content()
    assert "&lt;b&gt;Pat&lt;/b&gt; Rivera" in html and "<b>Pat</b>" not in html
