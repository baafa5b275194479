"""Rate limits hold under parallel requests, on SQLite and on PostgreSQL, and
their counter keys give nothing typed away."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from rtc_server.audit import AuditEvent
from rtc_server.auth import login, throttle
from rtc_server.auth.accounts import normalize_username
from rtc_server.auth.models import RateCounter, User
from tests.harness import PASSWORD, create_user, log_in

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


async def audited_request_ids(session_factory: Any, action: str, outcome: str) -> list[str | None]:
    async with session_factory() as s:
        return list((await s.exec(select(AuditEvent.request_id).where(
            AuditEvent.action == action, AuditEvent.outcome == outcome))).all())


@BACKENDS
async def test_parallel_logins_from_one_address_cannot_outrun_the_address_limit(
    client: httpx.AsyncClient, session_factory: Any, settings: Any,
) -> None:
    replies = await asyncio.gather(*(
        log_in(client, f"guess.user{i:03d}", "Guess-Guess-123") for i in range(200)
    ))
    statuses = [r.status_code for r in replies]
    assert 500 not in statuses
    assert set(statuses) <= {401, 429}
    limit = settings.login_ip_limit
    assert statuses.count(429) >= 200 - limit  # 150: the limit held exactly
    assert statuses.count(401) <= limit

    failures = await audited_request_ids(session_factory, "login.failure", "failure")
    denied = await audited_request_ids(session_factory, "login.rate_limited", "denied")
    refused = [r.json()["error"]["request_id"] for r in replies if r.status_code == 401]
    limited = [r.json()["error"]["request_id"] for r in replies if r.status_code == 429]
    assert sorted(refused) == sorted(failures)  # every 401 has its audit row, no more
    assert sorted(limited) == sorted(denied)


@BACKENDS
async def test_parallel_wrong_passwords_lock_the_account_without_errors(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, drain_mail: Any,
) -> None:
    user_id = await create_user(session_factory, "maria.lopez")
    replies = await asyncio.gather(*(
        log_in(client, "maria.lopez", f"Wrong-Guess-{i:03d}") for i in range(30)
    ))
    statuses = [r.status_code for r in replies]
    assert statuses == [401] * 30  # nothing reached 500, nothing got in

    async with session_factory() as s:
        user = await s.get(User, user_id)
        assert user is not None and user.locked_until is not None
        locks = (await s.exec(select(AuditEvent).where(AuditEvent.action == "account.lock"))).all()
        assert len(locks) == 1
    failures = await audited_request_ids(session_factory, "login.failure", "failure")
    assert sorted(failures) == sorted(r.json()["error"]["request_id"] for r in replies)

    # The lock is in effect: even the right password is refused now.
    assert (await log_in(client, "maria.lopez", PASSWORD)).status_code == 401
    await drain_mail()
    assert len(smtp.to("maria.lopez@example.org")) == 1


@pytest.mark.settings(login_ip_limit=2)
async def test_the_right_password_is_not_counted_as_a_failure(
    client: httpx.AsyncClient, session_factory: Any,
) -> None:
    """Attempts are counted before the check; one that succeeds is given back."""
    await create_user(session_factory, "maria.lopez")
    for _ in range(4):
        r = await log_in(client, "maria.lopez", PASSWORD)
        assert r.status_code == 200
    assert (await log_in(client, "someone.else", "Guess-Guess-1")).status_code == 401
    assert (await log_in(client, "someone.else", "Guess-Guess-2")).status_code == 401
    assert (await log_in(client, "someone.else", "Guess-Guess-3")).status_code == 429


async def test_typed_usernames_are_not_kept_as_plain_hashes(
    client: httpx.AsyncClient, session_factory: Any, secrets_seen: set[str],
) -> None:
    """People type passwords into the username field: what is stored must not
    be a plain (dictionary-searchable) hash of it."""
    typed = "Summer-Holiday-2024!"
    secrets_seen.add(typed)
    for _ in range(login.LOCK_AFTER):
        assert (await log_in(client, typed, "Anything-at-all-1")).status_code == 401
    plain = {hashlib.sha256(v.encode()).hexdigest()[:16]
             for v in (typed, normalize_username(typed))}
    async with session_factory() as s:
        resources = [r for r in (await s.exec(select(AuditEvent.resource))).all() if r]
        keys = list((await s.exec(select(RateCounter.key))).all())
        lock_rows = (await s.exec(select(AuditEvent).where(
            col(AuditEvent.action).in_(["login.failure", "account.lock"])))).all()
    assert len(lock_rows) == login.LOCK_AFTER + 1
    assert all(row.actor_id is None for row in lock_rows)
    for stored in resources + keys:
        assert not any(h in stored for h in plain), stored
        assert typed.lower() not in stored.lower()
    # The same name still links its attempts (a keyed hash, stable per server).
    assert len({row.resource for row in lock_rows}) == 1


def test_keys_are_keyed_by_the_server_secret() -> None:
    a = throttle.key_for("login:user", "maria.lopez", b"one-secret-" + b"x" * 32)
    b = throttle.key_for("login:user", "maria.lopez", b"another-secret-" + b"x" * 32)
    assert a.startswith("login:user:") and b.startswith("login:user:")
    assert a != b
    assert hashlib.sha256(b"maria.lopez").hexdigest()[:32] not in a
