"""Forgot password (link, security answer, new password) and forgot username."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from rtc_server.audit import AuditEvent
from rtc_server.auth import emailed_tokens
from rtc_server.auth.models import AccountToken, TokenPurpose, User
from rtc_server.auth.passwords import hash_secret, normalize_answer
from rtc_server.db import utcnow
from tests.harness import add_user, log_in, patient_row, token_from

PASSWORD = "Quiet-Meadow-Fox-31"
NEW_PASSWORD = "Bright-Canyon-Owl-58"
ANSWER = "Maple Street"
QUESTION = "What street did you live on in third grade?"


@pytest.fixture(autouse=True)
def _guard_secrets(secrets_seen: set[str]) -> None:
    secrets_seen.update({PASSWORD, NEW_PASSWORD, ANSWER})


async def make_patient_account(
    session_factory: Any, *, username: str = "maria.lopez", email: str | None = "maria@example.org",
    with_question: bool = True,
) -> int:
    async with session_factory() as s:
        patient = patient_row(given="María", family="López", email=email)
        s.add(patient)
        await s.flush()
        user = await add_user(s, username, password=PASSWORD, display_name="María López",
                              email=email, patient_id=patient.id)
        if with_question:
            user.security_question = QUESTION
            user.security_answer_hash = await hash_secret(normalize_answer(ANSWER))
        s.add(user)
        await s.commit()
        assert user.id is not None
        return user.id


async def request_reset(client: httpx.AsyncClient, smtp: Any, secrets_seen: set[str],
                        body: dict[str, str]) -> str:
    before = len(smtp.messages)
    r = await client.post("/api/v1/auth/password/forgot", json=body)
    assert r.status_code == 202 and r.json() == {"status": "check_email"}
    msgs = await smtp.wait_for(before + 1)
    [link] = smtp.links(msgs[-1])
    assert link.startswith("http://testserver/reset-password.html?token=")
    token = token_from(link)
    secrets_seen.add(token)
    return token


async def test_forgot_password_end_to_end_ends_the_old_session(
    client: httpx.AsyncClient, make_client: Any, session_factory: Any, smtp: Any,
    secrets_seen: set[str],
) -> None:
    user_id = await make_patient_account(session_factory)
    old_browser = await make_client()
    assert (await log_in(old_browser, "maria.lopez", PASSWORD)).status_code == 200
    assert (await old_browser.get("/api/v1/auth/session")).status_code == 200
    guesser = await make_client()
    for _ in range(5):  # someone guessing locks the account
        assert (await log_in(guesser, "maria.lopez", "Wrong-Guess-123")).status_code == 401
    assert (await log_in(guesser, "maria.lopez", PASSWORD)).status_code == 401
    before = len(smtp.messages)  # the lock notice

    token = await request_reset(client, smtp, secrets_seen, {"username": "MARIA.lopez"})
    assert str(smtp.messages[before]["To"]) == "maria@example.org"
    assert "maria.lopez" in smtp.text(smtp.messages[before])

    start = await client.post("/api/v1/auth/password/reset/start", json={"token": token})
    assert start.status_code == 200 and start.json() == {"security_question": QUESTION}
    # Looking at the question does not use the link up.
    again = await client.post("/api/v1/auth/password/reset/start", json={"token": token})
    assert again.status_code == 200

    wrong = await client.post("/api/v1/auth/password/reset", json={
        "token": token, "security_answer": "Elm Street", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "wrong_answer"
    weak = await client.post("/api/v1/auth/password/reset", json={
        "token": token, "security_answer": ANSWER, "new_password": "maria.lopez-Pass1"})
    assert weak.status_code == 422
    assert {f["field"] for f in weak.json()["error"]["fields"]} == {"new_password"}
    assert "Must not be or contain your username." in [
        f["message"] for f in weak.json()["error"]["fields"]]

    ok = await client.post("/api/v1/auth/password/reset", json={
        "token": token, "security_answer": "  maple STREET ", "new_password": NEW_PASSWORD})
    assert ok.status_code == 200 and ok.json() == {"status": "password_reset"}

    assert (await old_browser.get("/api/v1/auth/session")).status_code == 401
    reused = await client.post("/api/v1/auth/password/reset", json={
        "token": token, "security_answer": ANSWER, "new_password": NEW_PASSWORD + "x"})
    assert reused.status_code == 410 and reused.json()["error"]["code"] == "token_used"

    notice = (await smtp.wait_for(before + 2))[before + 1]
    assert str(notice["To"]) == "maria@example.org"
    assert "password" in smtp.text(notice) and smtp.links(notice) == []

    assert (await log_in(client, "maria.lopez", PASSWORD)).status_code == 401
    fresh = await make_client()
    r = await log_in(fresh, "maria.lopez", NEW_PASSWORD)
    assert r.status_code == 200, r.text  # the earlier lock was cleared by the reset
    async with session_factory() as s:
        user = await s.get(User, user_id)
        assert user is not None and user.locked_until is None and user.failed_logins == 0
        outcomes = (await s.exec(select(AuditEvent.outcome, AuditEvent.actor_id).where(
            AuditEvent.action == "password.reset", AuditEvent.resource == f"user:{user_id}"))).all()
        # A wrong answer proves nothing about who sent it: no actor. The reset
        # itself was made by the owner (link and answer).
        assert sorted(outcomes) == [("failure", None), ("success", user_id)]


async def test_five_wrong_answers_burn_the_link(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, secrets_seen: set[str]
) -> None:
    await make_patient_account(session_factory)
    token = await request_reset(client, smtp, secrets_seen, {"email": "Maria@Example.org"})
    for _ in range(5):
        r = await client.post("/api/v1/auth/password/reset", json={
            "token": token, "security_answer": "guess", "new_password": NEW_PASSWORD})
        assert r.status_code == 401
    r = await client.post("/api/v1/auth/password/reset", json={
        "token": token, "security_answer": ANSWER, "new_password": NEW_PASSWORD})
    assert r.status_code == 410
    r = await client.post("/api/v1/auth/password/reset/start", json={"token": token})
    assert r.status_code == 410


async def test_parallel_wrong_answers_cannot_outrun_the_link_limit(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, secrets_seen: set[str]
) -> None:
    """Answers are counted before they are checked: eight sent at once still
    burn the link, and none of them is answered with a 500."""
    await make_patient_account(session_factory)
    token = await request_reset(client, smtp, secrets_seen, {"username": "maria.lopez"})
    replies = await asyncio.gather(*(
        client.post("/api/v1/auth/password/reset", json={
            "token": token, "security_answer": f"guess {i}", "new_password": NEW_PASSWORD})
        for i in range(8)
    ))
    assert {r.status_code for r in replies} <= {401, 410}
    r = await client.post("/api/v1/auth/password/reset", json={
        "token": token, "security_answer": ANSWER, "new_password": NEW_PASSWORD})
    assert r.status_code == 410


@pytest.mark.settings(response_floor_seconds=0.4)
async def test_forgot_password_is_audited_without_an_actor(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, secrets_seen: set[str]
) -> None:
    """Nobody is signed in: the account is what the row is about, not who acted."""
    user_id = await make_patient_account(session_factory)
    started = time.monotonic()
    token = await request_reset(client, smtp, secrets_seen, {"username": "maria.lopez"})
    assert time.monotonic() - started >= 0.4  # the response floor
    r = await client.post("/api/v1/auth/password/reset/start", json={"token": token})
    assert r.status_code == 200
    async with session_factory() as s:
        rows = (await s.exec(select(AuditEvent).where(
            col(AuditEvent.action).in_(["password.reset_request", "password.reset_start"]))
            .order_by(col(AuditEvent.id)))).all()
    assert [(e.action, e.actor_id, e.resource) for e in rows] == [
        ("password.reset_request", None, f"user:{user_id}"),
        ("password.reset_start", None, f"user:{user_id}"),
    ]


async def test_a_password_reset_voids_other_reset_and_email_change_links(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, secrets_seen: set[str]
) -> None:
    user_id = await make_patient_account(session_factory)
    async with session_factory() as s:  # a change of address was under way
        change = await emailed_tokens.issue(s, user_id=user_id, purpose=TokenPurpose.email_change,
                                            email="maria.new@example.org")
        await s.commit()
    secrets_seen.add(change)
    token = await request_reset(client, smtp, secrets_seen, {"username": "maria.lopez"})
    r = await client.post("/api/v1/auth/password/reset", json={
        "token": token, "security_answer": ANSWER, "new_password": NEW_PASSWORD})
    assert r.status_code == 200
    r = await client.post("/api/v1/account/email/confirm", json={"token": change})
    assert r.status_code == 410 and r.json()["error"]["code"] == "token_used"
    async with session_factory() as s:
        live = (await s.exec(select(AccountToken).where(
            AccountToken.user_id == user_id, col(AccountToken.used_at).is_(None)))).all()
    assert live == []


async def test_expired_and_unknown_reset_links(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, secrets_seen: set[str]
) -> None:
    await make_patient_account(session_factory)
    token = await request_reset(client, smtp, secrets_seen, {"username": "maria.lopez"})
    async with session_factory() as s:
        await s.exec(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        await s.commit()
    r = await client.post("/api/v1/auth/password/reset/start", json={"token": token})
    assert r.status_code == 410 and r.json()["error"]["code"] == "token_expired"
    r = await client.post("/api/v1/auth/password/reset/start", json={"token": "made-up"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "token_invalid"


async def test_an_activation_link_is_not_a_reset_link(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, secrets_seen: set[str]
) -> None:
    user_id = await make_patient_account(session_factory)
    async with session_factory() as s:
        token = await emailed_tokens.issue(s, user_id=user_id, purpose=TokenPurpose.activation)
        await s.commit()
    secrets_seen.add(token)
    r = await client.post("/api/v1/auth/password/reset/start", json={"token": token})
    assert r.status_code == 404


async def test_forgot_password_reply_is_the_same_for_unknown_accounts(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any
) -> None:
    await make_patient_account(session_factory)
    replies = [
        await client.post("/api/v1/auth/password/forgot", json={"username": "maria.lopez"}),
        await client.post("/api/v1/auth/password/forgot", json={"username": "nobody.here"}),
        await client.post("/api/v1/auth/password/forgot", json={"email": "nobody@example.org"}),
    ]
    assert {(r.status_code, r.content) for r in replies} == {(202, b'{"status":"check_email"}')}
    assert len(await smtp.wait_for(1)) == 1
    assert smtp.to("nobody@example.org") == []


async def test_forgot_password_needs_a_username_or_an_email(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/password/forgot", json={})
    assert r.status_code == 422
    r = await client.post("/api/v1/auth/password/forgot", json={"email": "not-an-address"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "email"


async def test_account_without_a_security_question_cannot_reset_online(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any
) -> None:
    await make_patient_account(session_factory, with_question=False)
    r = await client.post("/api/v1/auth/password/forgot", json={"username": "maria.lopez"})
    assert r.status_code == 202
    [msg] = await smtp.wait_for(1)
    assert smtp.links(msg) == []
    assert "contact the clinic" in smtp.text(msg)


async def test_forgot_password_is_throttled_per_account(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, secrets_seen: set[str]
) -> None:
    await make_patient_account(session_factory)
    for _ in range(3):
        await request_reset(client, smtp, secrets_seen, {"username": "maria.lopez"})
    r = await client.post("/api/v1/auth/password/forgot", json={"username": "maria.lopez"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert len(smtp.messages) == 3
    # An earlier link stops working once a newer one is sent.
    async with session_factory() as s:
        live = (await s.exec(select(AccountToken).where(AccountToken.used_at == None))).all()  # noqa: E711
        assert len(live) == 1


async def test_forgot_username_mails_it_to_the_address_on_file(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any
) -> None:
    await make_patient_account(session_factory)
    known = await client.post("/api/v1/auth/username/forgot", json={"email": "MARIA@example.org"})
    unknown = await client.post("/api/v1/auth/username/forgot", json={"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content
    [msg] = await smtp.wait_for(1)
    assert str(msg["To"]) == "maria@example.org"
    assert '"maria.lopez"' in smtp.text(msg)
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None and "&quot;maria.lopez&quot;" in html_part.get_content()
    assert len(smtp.messages) == 1


async def test_mail_escapes_names_in_html(
    client: httpx.AsyncClient, session_factory: Any, smtp: Any, secrets_seen: set[str]
) -> None:
    async with session_factory() as s:
        user = await add_user(s, "tagged.user", password=PASSWORD,
                              display_name="<b>Eve</b> Hacker", email="eve@example.org")
        user.security_question = QUESTION
        user.security_answer_hash = await hash_secret(normalize_answer(ANSWER))
        s.add(user)
        await s.commit()
    await request_reset(client, smtp, secrets_seen, {"username": "tagged.user"})
    html_part = smtp.messages[0].get_body(preferencelist=("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<b>Eve</b>" not in html and "&lt;b&gt;Eve&lt;/b&gt;" in html
