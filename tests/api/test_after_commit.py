"""What services do after their transaction commits: live events on the
broker (every path that ends a session tells that user's sockets at once) and
mail through the outbox (sent by a worker, never on the request path)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pyotp
import pytest
from sqlmodel import select

from rtc_server.app import create_app
from rtc_server.auth.models import Role, User
from rtc_server.auth.passwords import hash_secret, normalize_answer
from rtc_server.notify.events import announce, user_channel
from rtc_server.notify.mail import compose
from rtc_server.notify.outbox import OutboxMail, queue_mail
from tests.harness import (
    PASSWORD,
    create_user,
    csrf_client,
    enrolled_staff,
    log_in,
    make_settings,
    sign_in,
    token_from,
)

BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
SESSION_CHECK = {"kind": "session_check"}


class Listener:
    """What the broker delivers on some channels (as a socket layer would see it)."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def __call__(self, channel: str, data: str) -> None:
        self.events.put_nowait((channel, json.loads(data)))

    async def next(self) -> tuple[str, dict[str, Any]]:
        async with asyncio.timeout(2):
            return await self.events.get()

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out


async def listen(app: Any, *channels: str) -> Listener:
    listener = Listener()
    await app.state.deps.broker.subscribe(list(channels), listener)
    return listener


# --- events ---------------------------------------------------------------------------

async def test_changing_the_password_tells_the_other_sessions_sockets_at_once(
    app: Any, client: httpx.AsyncClient, make_client: Any, session_factory: Any, secrets_seen: set[str]
) -> None:
    """It used to be only log-out and "end this session": a socket on a session
    ended by a password change stayed open until its next periodic check."""
    user_id = await create_user(session_factory, "maria.lopez")
    other = await make_client()
    await sign_in(other, "maria.lopez", secrets_seen)
    await sign_in(client, "maria.lopez", secrets_seen)
    events = await listen(app, user_channel(user_id))
    r = await client.post("/api/v1/account/password",
                          json={"current_password": PASSWORD, "new_password": "Quiet-Harbor-Lamp-71"})
    assert r.status_code == 200
    assert await events.next() == (user_channel(user_id), SESSION_CHECK)
    assert (await other.get("/api/v1/account")).status_code == 401


async def test_a_password_reset_tells_every_socket_of_the_account(
    app: Any, client: httpx.AsyncClient, session_factory: Any, smtp: Any, drain_mail: Any,
    secrets_seen: set[str],
) -> None:
    user_id = await create_user(session_factory, "maria.lopez")
    async with session_factory() as s:
        user = await s.get(User, user_id)
        user.security_question = "First pet?"
        user.security_answer_hash = await hash_secret(normalize_answer("rex the dog"))
        s.add(user)
        await s.commit()
    await client.post("/api/v1/auth/password/forgot", json={"username": "maria.lopez"})
    await drain_mail()
    token = token_from(next(x for x in smtp.links(smtp.to("maria.lopez@example.org")[-1]) if "token=" in x))
    secrets_seen.add(token)
    events = await listen(app, user_channel(user_id))
    r = await client.post("/api/v1/auth/password/reset", json={
        "token": token, "security_answer": "Rex the dog", "new_password": "Quiet-Harbor-Lamp-71"})
    assert r.status_code == 200
    assert await events.next() == (user_channel(user_id), SESSION_CHECK)


async def test_turning_two_factor_on_tells_the_other_sessions_sockets(
    app: Any, client: httpx.AsyncClient, session_factory: Any, secrets_seen: set[str]
) -> None:
    user_id = await create_user(session_factory, "maria.lopez")
    await sign_in(client, "maria.lopez", secrets_seen)
    r = await client.post("/api/v1/account/mfa/setup", json={"current_password": PASSWORD})
    secret = r.json()["secret"]
    secrets_seen.add(secret)
    events = await listen(app, user_channel(user_id))
    r = await client.post("/api/v1/account/mfa/confirm", json={"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200
    secrets_seen.update(r.json()["recovery_codes"])
    assert await events.next() == (user_channel(user_id), SESSION_CHECK)


async def test_a_role_change_that_ends_sessions_tells_their_sockets(
    app: Any, make_client: Any, session_factory: Any, secrets_seen: set[str]
) -> None:
    admin, _ = await enrolled_staff(make_client, session_factory, secrets_seen)
    staff_id = await create_user(session_factory, "front.desk", role=Role.staff)
    events = await listen(app, user_channel(staff_id))
    r = await admin.post(f"/api/v1/admin/users/{staff_id}/role",
                         json={"role": "provider", "current_password": PASSWORD})
    assert r.status_code == 200, r.text
    assert await events.next() == (user_channel(staff_id), SESSION_CHECK)


async def test_signing_in_again_and_signing_out_tell_the_replaced_sessions_sockets(
    app: Any, client: httpx.AsyncClient, session_factory: Any, secrets_seen: set[str]
) -> None:
    user_id = await create_user(session_factory, "maria.lopez")
    await sign_in(client, "maria.lopez", secrets_seen)
    events = await listen(app, user_channel(user_id))
    await sign_in(client, "maria.lopez", secrets_seen)  # the browser came with a live session
    assert await events.next() == (user_channel(user_id), SESSION_CHECK)
    assert (await client.post("/api/v1/auth/logout")).status_code == 204
    assert await events.next() == (user_channel(user_id), SESSION_CHECK)


async def test_ending_one_session_tells_its_sockets(
    app: Any, client: httpx.AsyncClient, make_client: Any, session_factory: Any,
    secrets_seen: set[str],
) -> None:
    user_id = await create_user(session_factory, "maria.lopez")
    other = await make_client()
    await sign_in(other, "maria.lopez", secrets_seen)
    await sign_in(client, "maria.lopez", secrets_seen)
    sessions = (await client.get("/api/v1/account/sessions")).json()
    [theirs] = [s["id"] for s in sessions if not s["current"]]
    events = await listen(app, user_channel(user_id))
    assert (await client.delete(f"/api/v1/account/sessions/{theirs}")).status_code == 204
    assert await events.next() == (user_channel(user_id), SESSION_CHECK)


async def test_events_go_out_only_when_their_transaction_commits(app: Any) -> None:
    events = await listen(app, "user:41")
    async with app.state.deps.session_factory() as db:
        announce(db, "user:41", {"kind": "appointment", "id": 1})
        await db.rollback()
        announce(db, "user:41", {"kind": "appointment", "id": 2})
        assert events.pending() == []  # nothing before the commit
        await db.commit()
    assert events.pending() == [("user:41", {"kind": "appointment", "id": 2})]
    async with app.state.deps.session_factory() as db:
        announce(db, "user:41", {"kind": "appointment", "id": 3})
    assert events.pending() == []  # closed without committing


async def test_a_failed_login_is_not_an_event(
    app: Any, client: httpx.AsyncClient, session_factory: Any
) -> None:
    user_id = await create_user(session_factory, "maria.lopez")
    events = await listen(app, user_channel(user_id))
    assert (await log_in(client, "maria.lopez", "Wrong-Password-1")).status_code == 401
    assert events.pending() == []


# --- mail -----------------------------------------------------------------------------

async def test_a_reply_that_causes_mail_does_not_wait_for_the_mail_server(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, drain_mail: Any
) -> None:
    """The mail used to go out in the request's own cycle: the reply (and the
    client's next request) waited for SMTP, so "an account has this address"
    showed in the timing. Now the outbox worker sends it."""
    await create_user(session_factory, "maria.lopez")
    smtp.accepting.clear()  # the mail server hangs
    try:
        async with asyncio.timeout(3):
            r = await client.post("/api/v1/auth/username/forgot",
                                  json={"email": "maria.lopez@example.org"})
            assert r.status_code == 202
            assert (await client.get("/api/v1/legal")).status_code == 200
        assert smtp.messages == []
    finally:
        smtp.accepting.set()
    await drain_mail()
    [mail] = smtp.to("maria.lopez@example.org")
    assert "maria.lopez" in smtp.text(mail)


def _mail(n: int = 0) -> Any:
    return compose(f"test_{n}", f"patient{n}@example.org", "Hello", "Clinic", None,
                   [f"Message {n} with a link"], ("Open", f"https://clinic.example/x?token=secret{n}"))


async def test_mail_queued_in_a_transaction_that_rolls_back_is_never_sent(
    app: Any, session_factory: Any, smtp: Any, drain_mail: Any
) -> None:
    async with session_factory() as db:
        queue_mail(db, _mail(1))
        await db.rollback()
        queue_mail(db, _mail(2))
        await db.commit()
    await drain_mail()
    assert [str(m["To"]) for m in smtp.messages] == ["patient2@example.org"]


async def test_sent_mail_loses_its_body(app: Any, session_factory: Any, smtp: Any, drain_mail: Any) -> None:
    """Emailed links are live credentials: the outbox keeps no copy once sent."""
    async with session_factory() as db:
        queue_mail(db, _mail(3))
        await db.commit()
    await drain_mail()
    async with session_factory() as db:
        [row] = (await db.exec(select(OutboxMail))).all()
    assert (row.status, row.attempts, row.text_body, row.html_body) == ("sent", 1, None, None)
    assert row.done_at is not None and row.done_at.tzinfo is not None


@pytest.mark.settings(mail_retry_seconds=0)
async def test_a_refused_mail_is_retried(
    session_factory: Any, smtp: Any, drain_mail: Any, log_lines: list[str]
) -> None:
    smtp.refuse_next = 2
    async with session_factory() as db:
        queue_mail(db, _mail(4))
        await db.commit()
    await drain_mail()
    assert len(smtp.to("patient4@example.org")) == 1
    async with session_factory() as db:
        [row] = (await db.exec(select(OutboxMail))).all()
    assert (row.status, row.attempts) == ("sent", 3)
    ours = [line for line in log_lines if line.startswith("rtc_server")]
    assert not any("patient4@example.org" in line for line in ours)  # the kind, never the address


@pytest.mark.settings(mail_retry_seconds=0, mail_max_attempts=3)
async def test_a_mail_that_keeps_failing_is_given_up_and_its_body_deleted(
    session_factory: Any, smtp: Any, drain_mail: Any, caplog: pytest.LogCaptureFixture
) -> None:
    smtp.refuse_next = 10
    with caplog.at_level(logging.ERROR, logger="rtc_server.outbox"):
        async with session_factory() as db:
            queue_mail(db, _mail(5))
            await db.commit()
        await drain_mail()
    async with session_factory() as db:
        [row] = (await db.exec(select(OutboxMail))).all()
    assert (row.status, row.attempts, row.text_body, row.html_body) == ("failed", 3, None, None)
    assert "gave up sending test_5 mail after 3 attempts" in caplog.text
    assert "patient5@example.org" not in caplog.text


@pytest.mark.settings(mail_retry_seconds=3600)
async def test_a_later_retry_does_not_hold_up_draining(
    session_factory: Any, smtp: Any, drain_mail: Any
) -> None:
    smtp.refuse_next = 1
    async with session_factory() as db:
        queue_mail(db, _mail(6))
        await db.commit()
    await drain_mail()
    async with session_factory() as db:
        [row] = (await db.exec(select(OutboxMail))).all()
    assert (row.status, row.attempts, row.last_error) == ("queued", 1, "MailError")
    assert row.text_body is not None  # kept for the retry


@BOTH_BACKENDS
async def test_two_instances_send_each_queued_mail_once(
    app: Any, settings: Any, smtp: Any, tmp_path: Any
) -> None:
    other = create_app(make_settings(tmp_path / "other", settings.database_url, smtp))
    async with other.router.lifespan_context(other):
        async with app.state.deps.session_factory() as db:
            for n in range(12):
                queue_mail(db, _mail(100 + n))
            await db.commit()
        async with asyncio.timeout(20):
            await asyncio.gather(app.state.deps.mail_worker.drain(),
                                 other.state.deps.mail_worker.drain())
            await asyncio.gather(app.state.deps.mail_worker.drain(),
                                 other.state.deps.mail_worker.drain())
    assert sorted(str(m["To"]) for m in smtp.messages) == sorted(
        f"patient{100 + n}@example.org" for n in range(12))


async def test_a_login_lock_mail_goes_through_the_outbox(
    app: Any, session_factory: Any, smtp: Any, drain_mail: Any
) -> None:
    await create_user(session_factory, "maria.lopez")
    client = await csrf_client(app)
    try:
        smtp.accepting.clear()
        async with asyncio.timeout(5):
            for _ in range(5):
                assert (await log_in(client, "maria.lopez", "Wrong-Password-1")).status_code == 401
    finally:
        smtp.accepting.set()
        await client.aclose()
    await drain_mail()
    assert len(smtp.to("maria.lopez@example.org")) == 1
