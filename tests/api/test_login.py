"""Signing in: one answer for every failure, lockout with a mail, a new
session at every sign-in, throttling per address, rehash on log-in."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import update
from sqlmodel import col, select

from rtc_server.audit import AuditEvent
from rtc_server.auth import login
from rtc_server.auth.models import RateCounter, User, UserStatus
from rtc_server.auth.passwords import needs_rehash
from rtc_server.db import utcnow
from tests.harness import PASSWORD, create_user

INVALID = "Incorrect username or password, or the account is temporarily locked."


def error_without_request_id(r: httpx.Response) -> dict:
    body = r.json()
    body["error"].pop("request_id", None)
    return body


async def test_patient_logs_in_and_gets_a_session(client, session_factory, secrets_seen) -> None:
    secrets_seen.add(PASSWORD)
    await create_user(session_factory, "maria.lopez")
    r = await client.post("/api/v1/auth/login", json={"username": "Maria.Lopez", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["user"]["username"] == "maria.lopez"
    assert body["user"]["role"] == "patient"
    set_cookie = r.headers["set-cookie"]
    assert "rtc_session=" in set_cookie and "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie
    secrets_seen.add(client.cookies["rtc_session"])
    s = await client.get("/api/v1/auth/session")
    assert s.status_code == 200
    assert s.json()["stage"] == "full"
    assert s.json()["user"]["username"] == "maria.lopez"


async def test_wrong_password_unknown_user_and_pending_account_look_identical(
    client, session_factory, secrets_seen
) -> None:
    secrets_seen.add(PASSWORD)
    await create_user(session_factory, "maria.lopez")
    await create_user(session_factory, "pending.pat", status=UserStatus.pending)
    wrong = await client.post("/api/v1/auth/login",
                              json={"username": "maria.lopez", "password": "Wrong-Password-1"})
    unknown = await client.post("/api/v1/auth/login",
                                json={"username": "nobody.here", "password": PASSWORD})
    pending = await client.post("/api/v1/auth/login",
                                json={"username": "pending.pat", "password": PASSWORD})
    for r in (wrong, unknown, pending):
        assert r.status_code == 401
        assert "set-cookie" not in r.headers or "rtc_session" not in r.headers["set-cookie"]
    assert error_without_request_id(wrong) == error_without_request_id(unknown)
    assert error_without_request_id(wrong) == error_without_request_id(pending)
    assert error_without_request_id(wrong) == {
        "error": {"code": "invalid_credentials", "message": INVALID}
    }
    assert (await client.get("/api/v1/auth/session")).status_code == 401


async def test_every_login_creates_a_new_session_and_ends_the_presented_one(
    client, make_client, session_factory, secrets_seen
) -> None:
    secrets_seen.add(PASSWORD)
    await create_user(session_factory, "maria.lopez")
    creds = {"username": "maria.lopez", "password": PASSWORD}
    await client.post("/api/v1/auth/login", json=creds)
    first = client.cookies["rtc_session"]
    await client.post("/api/v1/auth/login", json=creds)
    second = client.cookies["rtc_session"]
    secrets_seen.update({first, second})
    assert first != second
    replay = await make_client()
    replay.cookies.set("rtc_session", first)
    assert (await replay.get("/api/v1/auth/session")).status_code == 401
    assert (await client.get("/api/v1/auth/session")).status_code == 200


async def test_five_failures_lock_the_account_and_mail_the_owner_once(
    client, session_factory, smtp, secrets_seen, drain_mail
) -> None:
    secrets_seen.add(PASSWORD)
    user_id = await create_user(session_factory, "maria.lopez")
    for _ in range(login.LOCK_AFTER):
        r = await client.post("/api/v1/auth/login",
                              json={"username": "maria.lopez", "password": "Not-Her-Pass-9"})
        assert r.status_code == 401
    await smtp.wait_for(1)
    mails = smtp.to("maria.lopez@example.org")
    assert len(mails) == 1
    text = smtp.text(mails[0])
    assert "locked after failed sign-ins" in text
    assert "/forgot-password.html" in text
    assert PASSWORD not in text

    # While locked, even the right password gets the very same answer.
    r = await client.post("/api/v1/auth/login", json={"username": "maria.lopez", "password": PASSWORD})
    assert r.status_code == 401
    assert error_without_request_id(r)["error"] == {"code": "invalid_credentials", "message": INVALID}
    # One more failure while locked does not send another mail.
    await client.post("/api/v1/auth/login", json={"username": "maria.lopez", "password": "Nope-Nope-12"})
    await drain_mail()
    assert len(smtp.to("maria.lopez@example.org")) == 1

    async with session_factory() as s:
        user = await s.get(User, user_id)
        assert user.locked_until is not None
        actions = [e.action for e in (await s.exec(select(AuditEvent))).all()]
    assert actions.count("account.lock") == 1
    assert "login.failure" in actions


async def test_unknown_username_is_locked_the_same_way(client, session_factory) -> None:
    for _ in range(login.LOCK_AFTER + 1):
        r = await client.post("/api/v1/auth/login",
                              json={"username": "ghost.user", "password": "Whatever-123"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_credentials"
    async with session_factory() as s:
        rows = (await s.exec(select(AuditEvent).where(AuditEvent.action == "account.lock"))).all()
    assert len(rows) == 1
    assert rows[0].actor_id is None
    assert "ghost" not in (rows[0].resource or "")


async def test_a_successful_login_clears_the_failure_count(client, session_factory, secrets_seen) -> None:
    secrets_seen.add(PASSWORD)
    await create_user(session_factory, "maria.lopez")
    for _round in range(2):
        for _ in range(login.LOCK_AFTER - 1):
            r = await client.post("/api/v1/auth/login",
                                  json={"username": "maria.lopez", "password": "Almost-There-1"})
            assert r.status_code == 401
        r = await client.post("/api/v1/auth/login", json={"username": "maria.lopez", "password": PASSWORD})
        assert r.status_code == 200


@pytest.mark.settings(login_ip_limit=3)
async def test_too_many_failures_from_one_address_get_429(client, session_factory) -> None:
    for i in range(3):
        r = await client.post("/api/v1/auth/login",
                              json={"username": f"someone{i}x", "password": "Guess-Guess-1"})
        assert r.status_code == 401
    r = await client.post("/api/v1/auth/login", json={"username": "someone9x", "password": "Guess-1"})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) > 0
    async with session_factory() as s:
        [row] = (await s.exec(select(AuditEvent).where(AuditEvent.outcome == "denied"))).all()
    assert row.action == "login.rate_limited" and row.actor_id is None
    assert row.request_id == r.json()["error"]["request_id"]
    assert "someone9x" not in (row.resource or "")


async def test_an_old_hash_is_upgraded_at_login(client, session_factory, secrets_seen) -> None:
    secrets_seen.add(PASSWORD)
    user_id = await create_user(session_factory, "maria.lopez")
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    async with session_factory() as s:
        user = await s.get(User, user_id)
        user.password_hash = weak
        s.add(user)
        await s.commit()
    r = await client.post("/api/v1/auth/login", json={"username": "maria.lopez", "password": PASSWORD})
    assert r.status_code == 200
    async with session_factory() as s:
        stored = (await s.get(User, user_id)).password_hash
    assert stored != weak
    assert not needs_rehash(stored)


@pytest.mark.parametrize("body", [{}, {"username": "x"}, {"username": "", "password": "y"}])
async def test_malformed_login_names_the_field(client, body) -> None:
    r = await client.post("/api/v1/auth/login", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["fields"]


async def test_an_account_locked_again_after_its_lock_ran_out_answers_the_same(
    client, session_factory, smtp, drain_mail
) -> None:
    """On SQLite the second lock used to answer 500 (for real accounts only: an
    oracle), and lost its audit row and its mail."""
    user_id = await create_user(session_factory, "maria.lopez")
    await create_user(session_factory, "other.person")
    for _round in range(2):
        statuses = [
            (await client.post("/api/v1/auth/login",
                               json={"username": "maria.lopez", "password": "Not-Her-Pass-9"})).status_code
            for _ in range(login.LOCK_AFTER)
        ]
        assert statuses == [401] * login.LOCK_AFTER
        # Fifteen minutes and more pass: the lock and its counters run out.
        async with session_factory() as s:
            await s.exec(update(User).where(col(User.id) == user_id)
                         .values(locked_until=utcnow() - timedelta(minutes=1)))
            await s.exec(update(RateCounter).values(
                window_start=utcnow() - timedelta(seconds=login.LOCK_SECONDS + 60)))
            await s.commit()
    async with session_factory() as s:
        locks = (await s.exec(select(AuditEvent).where(AuditEvent.action == "account.lock"))).all()
    assert len(locks) == 2
    await drain_mail()
    assert len(smtp.to("maria.lopez@example.org")) == 2
