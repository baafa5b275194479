"""Registration against the record on file, activation, and the staff
identity-verification queue, through the public API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update
from sqlmodel import col, select

from rtc_server.audit import AuditEvent
from rtc_server.auth.models import (
    AccountToken,
    Registration,
    RegistrationStatus,
    Role,
    TokenPurpose,
    User,
    UserStatus,
)
from rtc_server.auth.passwords import normalize_answer, verify_secret
from rtc_server.auth.timing import MIN_RESPONSE_SECONDS
from rtc_server.db import utcnow
from rtc_server.portal.registration.service import REGISTER_PER_IP
from rtc_server.records.models import Patient
from tests.harness import create_patient, create_signed_in_user, create_user, token_from

PASSWORD = "Harbor-Lantern-73q"
ANSWER = "Grandma Tilly's biscuits"
STAFF_PASSWORD = "Staff-Desk-Pass-9"
CHECK_EMAIL = {
    "status": "check_email",
    "message": "If the details match our records, we've sent the next steps to your email.",
}

Factory = Any  # async_sessionmaker; kept loose so tests read simply


async def add_patient(
    session_factory: Factory, *, given: str = "Zoë", family: str = "Núñez-Ortiz",
    birth: str = "1984-03-12", zip_code: str | None = "02139", email: str | None = "zoe@example.org",
    mrn: str = "MRN-1001", phone: str | None = "617-555-0100",
) -> int:
    return await create_patient(
        session_factory, given=given, family=family, birth=date.fromisoformat(birth),
        zip_code=zip_code, email=email, mrn=mrn, phone=phone,
    )


def form(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "first_name": "zoe", "last_name": "NUNEZ ORTIZ", "birth_date": "1984-03-12",
        "zip": "02139-4307", "email": "Zoe@Example.org", "username": "zoe.nunez",
        "password": PASSWORD, "security_question": "What was the name of your first pet?",
        "security_answer": ANSWER, "accept_terms": True, "accept_privacy": True,
    }
    body.update(overrides)
    return body


def field_messages(r: httpx.Response, field: str) -> list[str]:
    return [f["message"] for f in r.json()["error"]["fields"] if f["field"] == field]


async def signed_in(
    make_client: Callable[[], Awaitable[httpx.AsyncClient]], app: Any,
    role: Role = Role.staff, username: str = "frontdesk1",
) -> httpx.AsyncClient:
    """A client with a full session. Staff must enrol in two-factor at log-in, so
    the session is made directly rather than through the log-in endpoint."""
    token = await create_signed_in_user(
        app.state.session_factory, app.state.settings, username, role=role,
        password=STAFF_PASSWORD, display_name=username, email=None,
    )
    c = await make_client()
    c.cookies.set("rtc_session", token)
    return c


@pytest.fixture(autouse=True)
def _guard_secrets(secrets_seen: set[str]) -> None:
    secrets_seen.update({PASSWORD, ANSWER, STAFF_PASSWORD})


async def register_and_get_link(client: httpx.AsyncClient, smtp: Any, secrets_seen: set[str],
                                **overrides: Any) -> str:
    before = len(smtp.messages)
    r = await client.post("/api/v1/auth/register", json=form(**overrides))
    assert r.status_code == 202, r.text
    msgs = await smtp.wait_for(before + 1)
    links = smtp.links(msgs[-1])
    assert len(links) == 1
    secrets_seen.add(token_from(links[0]))
    return links[0]


# --- input rules -------------------------------------------------------------

async def test_password_policy_lists_the_rules(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/auth/password-policy")
    assert r.status_code == 200
    body = r.json()
    assert body["min_length"] == 8 and body["max_length"] == 128
    assert any("uppercase" in rule for rule in body["rules"])
    assert any("common" in rule for rule in body["rules"])


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("Ab1cdef", "Use at least 8 characters."),
        ("Ab1" + "x" * 126, "Use at most 128 characters."),
        ("lowercase-only-77", "Include at least one uppercase letter."),
        ("UPPERCASE-ONLY-77", "Include at least one lowercase letter."),
        ("No-Digits-Anywhere", "Include at least one number."),
        ("Xzoe.nunez9", "Must not be or contain your username."),
        ("Password1", "This password is too common; choose another."),
    ],
)
async def test_each_password_rule_rejects_with_its_message(
    client: httpx.AsyncClient, smtp: Any, password: str, message: str
) -> None:
    r = await client.post("/api/v1/auth/register", json=form(password=password))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert message in field_messages(r, "password")
    assert smtp.messages == []


async def test_long_unicode_password_is_accepted_whole(
    client: httpx.AsyncClient, session_factory: Factory, secrets_seen: set[str]
) -> None:
    await add_patient(session_factory)
    password = "Ünïcødé-Pässwörd-42-" + "ж" * 100  # 120 characters, not truncated
    secrets_seen.add(password)
    r = await client.post("/api/v1/auth/register", json=form(password=password))
    assert r.status_code == 202
    async with session_factory() as s:
        user = (await s.exec(select(User))).one()
        assert await verify_secret(user.password_hash, password)
        assert not await verify_secret(user.password_hash, password[:72])


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("zoe", "Use at least 6 characters."),
        ("zoe nunez", "Use letters, numbers and . _ - @ + only."),
        ("x" * 65, "Use at most 64 characters."),
    ],
)
async def test_username_rules(client: httpx.AsyncClient, username: str, message: str) -> None:
    r = await client.post("/api/v1/auth/register", json=form(username=username))
    assert r.status_code == 422
    assert message in field_messages(r, "username")


async def test_taken_username_is_refused_case_insensitively(
    client: httpx.AsyncClient, session_factory: Factory
) -> None:
    await create_user(session_factory, "Zoe.Nunez", password="Other-Pass-Word-5", email=None)
    r = await client.post("/api/v1/auth/register", json=form(username="zoe.NUNEZ"))
    assert r.status_code == 422
    assert field_messages(r, "username") == ["That username is taken; choose another."]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"accept_terms": False}, "accept_terms",
         "You must accept the Terms and Conditions of Use to register."),
        ({"accept_privacy": False}, "accept_privacy", "You must accept the Privacy Policy to register."),
        ({"birth_date": "1984-02-30"}, "birth_date", "That date does not exist; check the day and month."),
        ({"birth_date": "03/12/1984"}, "birth_date", "Enter your date of birth as YYYY-MM-DD."),
        ({"birth_date": (date.today() + timedelta(days=2)).isoformat()}, "birth_date",
         "Your date of birth must be in the past."),
        ({"zip": "0213"}, "zip", "Enter a 5-digit zip code, or ZIP+4 such as 12345-6789."),
        ({"zip": "02139-43"}, "zip", "Enter a 5-digit zip code, or ZIP+4 such as 12345-6789."),
        ({"zip": "ABCDE"}, "zip", "Enter a 5-digit zip code, or ZIP+4 such as 12345-6789."),
        ({"first_name": "  "}, "first_name", "Enter your first name as it appears in your record."),
        ({"last_name": ""}, "last_name", "Enter your last name as it appears in your record."),
        ({"email": "zoe@"}, "email", "Enter a valid email address, such as name@example.com."),
        ({"security_question": " "}, "security_question", "Choose or write a security question."),
        ({"security_answer": "ab"}, "security_answer", "Use at least 3 characters."),
    ],
)
async def test_each_form_rule_names_its_field(
    client: httpx.AsyncClient, overrides: dict[str, Any], field: str, message: str
) -> None:
    r = await client.post("/api/v1/auth/register", json=form(**overrides))
    assert r.status_code == 422
    assert field_messages(r, field) == [message]


async def test_missing_checkbox_and_wrong_types_are_field_errors(client: httpx.AsyncClient) -> None:
    body = form()
    del body["accept_privacy"]
    r = await client.post("/api/v1/auth/register", json=body)
    assert r.status_code == 422
    assert field_messages(r, "accept_privacy")


async def test_every_broken_rule_is_reported_at_once(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/register", json=form(
        password="short", zip="1", accept_terms=False, username="ab"))
    fields = {f["field"] for f in r.json()["error"]["fields"]}
    assert {"password", "zip", "accept_terms", "username"} <= fields


# --- matching ----------------------------------------------------------------

async def test_matching_and_non_matching_registrations_get_identical_replies(
    client: httpx.AsyncClient, make_client: Any, session_factory: Factory, smtp: Any,
    secrets_seen: set[str],
) -> None:
    await add_patient(session_factory)
    other = await make_client()
    matched = await client.post("/api/v1/auth/register", json=form())
    unmatched = await other.post(
        "/api/v1/auth/register", json=form(birth_date="1984-03-13", username="someone.else"))
    assert matched.status_code == unmatched.status_code == 202
    # A match does more database work; neither answer comes back before the floor.
    assert matched.elapsed.total_seconds() >= MIN_RESPONSE_SECONDS
    assert unmatched.elapsed.total_seconds() >= MIN_RESPONSE_SECONDS
    assert matched.content == unmatched.content
    assert matched.json() == CHECK_EMAIL
    assert set(matched.headers) == set(unmatched.headers)

    msgs = await smtp.wait_for(1)
    assert len(msgs) == 1
    # Only to the address on file, accents and case in the entered name notwithstanding.
    assert str(msgs[0]["To"]) == "zoe@example.org"
    text = smtp.text(msgs[0])
    assert "Zoë" in text
    [link] = smtp.links(msgs[0])
    assert link.startswith("http://testserver/activate.html?token=")
    token = token_from(link)
    secrets_seen.add(token)
    assert len(token) >= 22  # >= 128 bits
    html_part = msgs[0].get_body(preferencelist=("html",))
    assert html_part is not None and "activate.html?token=" in html_part.get_content()

    async with session_factory() as s:
        user = (await s.exec(select(User))).one()
        assert user.status == UserStatus.pending and user.role == Role.patient
        assert user.terms_version and user.privacy_version and user.terms_accepted_at
        assert user.security_answer_hash and ANSWER not in user.security_answer_hash
        # Stored like a password, compared case- and space-insensitively.
        assert await verify_secret(user.security_answer_hash,
                                   normalize_answer("grandma   TILLY'S  Biscuits"))
        token_row = (await s.exec(select(AccountToken))).one()
        assert token not in token_row.token_hash
        rows = (await s.exec(select(AuditEvent).where(AuditEvent.action == "registration.submit")
                             .order_by(col(AuditEvent.id)))).all()
        assert [r.outcome for r in rows] == ["success", "failure"]
        assert rows[0].patient_id == user.patient_id and rows[1].patient_id is None
        # Nobody was signed in: the new account is what the row is about, not who acted.
        assert rows[0].actor_id is None and rows[0].resource == f"user:{user.id}"
        assert all("@" not in (r.resource or "") for r in rows)


async def test_entered_email_must_match_the_one_on_file(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any
) -> None:
    await add_patient(session_factory)
    r = await client.post("/api/v1/auth/register", json=form(email="attacker@evil.example"))
    assert r.status_code == 202 and r.json() == CHECK_EMAIL
    msgs = await smtp.wait_for(1)
    assert smtp.to("attacker@evil.example") == []
    assert str(msgs[0]["To"]) == "zoe@example.org"
    assert smtp.links(msgs[0]) == []  # a warning, never a link
    async with session_factory() as s:
        assert (await s.exec(select(User))).all() == []


async def test_ambiguous_and_deceased_records_match_nothing(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any
) -> None:
    await add_patient(session_factory, mrn="A")
    await add_patient(session_factory, mrn="B")  # a duplicate: whose is it?
    pid = await add_patient(session_factory, given="Ada", family="Lane", email="ada@example.org")
    async with session_factory() as s:
        p = await s.get(Patient, pid)
        assert p is not None
        p.deceased_at = utcnow()
        s.add(p)
        await s.commit()
    r1 = await client.post("/api/v1/auth/register", json=form())
    r2 = await client.post("/api/v1/auth/register", json=form(
        first_name="Ada", last_name="Lane", email="ada@example.org", username="ada.lane"))
    assert r1.json() == r2.json() == CHECK_EMAIL
    assert smtp.messages == []


# --- activation --------------------------------------------------------------

async def test_activation_link_works_once_then_the_patient_logs_in(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    pid = await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))

    r = await client.post("/api/v1/auth/activate", json={"token": token})
    assert r.status_code == 200 and r.json() == {"status": "activated"}
    again = await client.post("/api/v1/auth/activate", json={"token": token})
    assert again.status_code == 410
    assert again.json()["error"]["code"] == "token_used"

    async with session_factory() as s:
        user = (await s.exec(select(User))).one()
        assert user.status == UserStatus.active and user.activated_at is not None
        assert user.email == "zoe@example.org" and user.patient_id == pid
        reg = (await s.exec(select(Registration))).one()
        assert reg.status == RegistrationStatus.activated
        audit = (await s.exec(select(AuditEvent).where(AuditEvent.action == "account.activate",
                                                       AuditEvent.outcome == "success"))).one()
        assert audit.actor_id == user.id and audit.patient_id == pid

    login = await client.post("/api/v1/auth/login",
                              json={"username": "ZOE.nunez", "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.json()["status"] == "ok"
    assert login.json()["user"]["patient_id"] == pid
    # Account Settings start from the contact details on file.
    account = (await client.get("/api/v1/account")).json()
    assert account["phone"] == "617-555-0100"
    assert account["address"]["zip"] == "02139"


async def test_pending_account_cannot_log_in(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    await add_patient(session_factory)
    await register_and_get_link(client, smtp, secrets_seen)
    r = await client.post("/api/v1/auth/login", json={"username": "zoe.nunez", "password": PASSWORD})
    assert r.status_code == 401


async def test_expired_and_unknown_activation_links_fail_then_resend_works(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))
    async with session_factory() as s:
        await s.exec(update(AccountToken).values(expires_at=utcnow() - timedelta(minutes=1)))
        await s.commit()
    r = await client.post("/api/v1/auth/activate", json={"token": token})
    assert r.status_code == 410 and r.json()["error"]["code"] == "token_expired"
    r = await client.post("/api/v1/auth/activate", json={"token": "not-a-real-token"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "token_invalid"

    nobody = await client.post("/api/v1/auth/activate/resend", json={"email": "nobody@example.org"})
    resent = await client.post("/api/v1/auth/activate/resend", json={"email": "ZOE@example.org"})
    assert nobody.status_code == resent.status_code == 202
    assert nobody.content == resent.content == b'{"status":"check_email"}'
    msgs = await smtp.wait_for(2)
    assert len(msgs) == 2 and str(msgs[1]["To"]) == "zoe@example.org"
    new_token = token_from(smtp.links(msgs[1])[0])
    secrets_seen.add(new_token)
    r = await client.post("/api/v1/auth/activate", json={"token": new_token})
    assert r.status_code == 200


async def test_a_record_with_an_account_is_not_taken_over(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))
    assert (await client.post("/api/v1/auth/activate", json={"token": token})).status_code == 200

    r = await client.post("/api/v1/auth/register", json=form(username="new.owner"))
    assert r.status_code == 202 and r.json() == CHECK_EMAIL
    msgs = await smtp.wait_for(2)
    assert str(msgs[1]["To"]) == "zoe@example.org"
    assert smtp.links(msgs[1]) == []
    assert "Someone tried" in smtp.text(msgs[1])
    async with session_factory() as s:
        users = (await s.exec(select(User))).all()
        assert [u.username for u in users] == ["zoe.nunez"]


async def test_live_pending_registration_blocks_a_second_one_until_its_link_expires(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    await add_patient(session_factory)
    await register_and_get_link(client, smtp, secrets_seen)
    r = await client.post("/api/v1/auth/register", json=form(username="second.try"))
    assert r.json() == CHECK_EMAIL
    assert len(smtp.messages) == 1  # no second link while the first is live

    async with session_factory() as s:
        await s.exec(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        await s.commit()
    # The stale sign-up gives way: its record and its username are free again.
    link = await register_and_get_link(client, smtp, secrets_seen)
    r = await client.post("/api/v1/auth/activate", json={"token": token_from(link)})
    assert r.status_code == 200
    async with session_factory() as s:
        users = (await s.exec(select(User))).all()
        assert [(u.username, u.status) for u in users] == [("zoe.nunez", UserStatus.active)]


async def test_stale_pending_username_is_freed_for_someone_else(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    await add_patient(session_factory)
    await add_patient(session_factory, given="Ada", family="Lane", email="ada@example.org", mrn="M2")
    await register_and_get_link(client, smtp, secrets_seen)
    taken = await client.post("/api/v1/auth/register", json=form(
        first_name="Ada", last_name="Lane", email="ada@example.org"))
    assert taken.status_code == 422  # zoe.nunez is reserved while its link is live
    async with session_factory() as s:
        await s.exec(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        await s.commit()
    await register_and_get_link(client, smtp, secrets_seen, first_name="Ada", last_name="Lane",
                                email="ada@example.org")
    assert str(smtp.messages[-1]["To"]) == "ada@example.org"


# --- throttling --------------------------------------------------------------

async def test_registration_is_throttled_per_ip_with_retry_after(
    client: httpx.AsyncClient, session_factory: Factory
) -> None:
    for i in range(10):
        r = await client.post("/api/v1/auth/register", json=form(
            first_name=f"Nobody{i}", username=f"nobody{i:02d}"))
        assert r.status_code == 202
    r = await client.post("/api/v1/auth/register", json=form(first_name="Nobody11", username="nobody11"))
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0
    async with session_factory() as s:
        denied = (await s.exec(select(AuditEvent).where(
            AuditEvent.action == "registration.submit", AuditEvent.outcome == "denied"))).all()
    assert [(d.request_id, d.actor_id) for d in denied] == [(r.json()["error"]["request_id"], None)]


async def test_parallel_sign_ups_cannot_outrun_the_address_limit(client: httpx.AsyncClient) -> None:
    replies = await asyncio.gather(*(
        client.post("/api/v1/auth/register", json=form(
            first_name=f"Parallel{i}", username=f"parallel{i:02d}"))
        for i in range(14)
    ))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [202] * REGISTER_PER_IP[0] + [429] * (14 - REGISTER_PER_IP[0])


async def test_a_conflict_while_saving_the_registration_still_gets_the_same_reply(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any,
) -> None:
    """Whatever a parallel request or a staff decision does to these rows, the
    applicant sees the usual 202, never a 500, and nothing half-made is kept."""
    await add_patient(session_factory)
    async with session_factory() as s:  # stands in for a row that appeared in the meantime
        await s.exec(text(
            "CREATE TRIGGER registration_conflict BEFORE INSERT ON registration "
            "BEGIN SELECT RAISE(ABORT, 'conflict'); END"))
        await s.commit()
    r = await client.post("/api/v1/auth/register", json=form())
    assert r.status_code == 202 and r.json() == CHECK_EMAIL
    async with session_factory() as s:
        assert (await s.exec(select(User))).all() == []
        assert (await s.exec(select(AccountToken))).all() == []
        rows = (await s.exec(select(AuditEvent.outcome, AuditEvent.resource).where(
            AuditEvent.action == "registration.submit"))).all()
    assert rows == [("failure", "registration:conflict")]
    assert smtp.messages == []


async def test_attempts_on_one_record_are_capped_without_changing_the_reply(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any
) -> None:
    await add_patient(session_factory)
    replies = []
    for i in range(4):
        r = await client.post("/api/v1/auth/register", json=form(
            email=f"wrong{i}@evil.example", username=f"guesser{i}"))
        replies.append((r.status_code, r.content))
    assert len(set(replies)) == 1 and replies[0][0] == 202
    # Three warnings reached the patient; the fourth attempt was silently dropped.
    assert len(smtp.to("zoe@example.org")) == 3
    async with session_factory() as s:
        rows = (await s.exec(select(AuditEvent).where(
            AuditEvent.action == "registration.submit").order_by(col(AuditEvent.id)))).all()
        assert [r.resource for r in rows][-1] == "registration:throttled"


# --- records without email or zip: staff verification -------------------------

async def test_record_without_email_waits_for_staff_then_activates(
    client: httpx.AsyncClient, app: Any, make_client: Any, session_factory: Factory, smtp: Any,
    secrets_seen: set[str],
) -> None:
    pid = await add_patient(session_factory, email=None)
    r = await client.post("/api/v1/auth/register", json=form(email="zoe.new@example.net"))
    assert r.status_code == 202 and r.json() == CHECK_EMAIL
    assert smtp.messages == []

    staff = await signed_in(make_client, app)
    r = await staff.get("/api/v1/staff/verifications")
    assert r.status_code == 200
    [item] = r.json()
    assert item["entered"] == {"first_name": "zoe", "last_name": "NUNEZ ORTIZ",
                               "birth_date": "1984-03-12", "zip": "02139-4307",
                               "email": "zoe.new@example.net"}
    assert item["patient"] == {"id": pid, "name": "Zoë Núñez-Ortiz", "birth_date": "1984-03-12",
                               "zip": "02139", "mrn": "MRN-1001", "phone": "617-555-0100"}

    # Nobody can activate without a link, and resend does not bypass staff.
    r = await client.post("/api/v1/auth/activate/resend", json={"email": "zoe.new@example.net"})
    assert r.status_code == 202 and r.elapsed.total_seconds() >= MIN_RESPONSE_SECONDS
    assert smtp.messages == []

    r = await staff.post(f"/api/v1/staff/verifications/{item['id']}/approve",
                         json={"note": "Confirmed by phone with photo ID"})
    assert r.status_code == 200 and r.json() == {"status": "approved"}
    msgs = await smtp.wait_for(1)
    assert str(msgs[0]["To"]) == "zoe.new@example.net"
    token = token_from(smtp.links(msgs[0])[0])
    secrets_seen.add(token)
    assert (await staff.get("/api/v1/staff/verifications")).json() == []
    again = await staff.post(f"/api/v1/staff/verifications/{item['id']}/approve", json={})
    assert again.status_code == 409

    assert (await client.post("/api/v1/auth/activate", json={"token": token})).status_code == 200
    login = await client.post("/api/v1/auth/login", json={"username": "zoe.nunez", "password": PASSWORD})
    assert login.status_code == 200 and login.json()["user"]["patient_id"] == pid
    async with session_factory() as s:
        user = (await s.exec(select(User).where(User.username == "zoe.nunez"))).one()
        assert user.email == "zoe.new@example.net"
        actions = (await s.exec(select(AuditEvent.action, AuditEvent.patient_id, AuditEvent.actor_id)
                                .where(AuditEvent.action == "registration.approve"))).all()
        assert len(actions) == 1 and actions[0][1] == pid and actions[0][2] is not None


async def test_only_staff_and_admins_see_and_decide_the_verification_queue(
    client: httpx.AsyncClient, app: Any, make_client: Any, session_factory: Factory, smtp: Any,
) -> None:
    await add_patient(session_factory, email=None)
    await client.post("/api/v1/auth/register", json=form())
    provider = await signed_in(make_client, app, Role.provider, "drwho01")
    patient = await signed_in(make_client, app, Role.patient, "patient01")
    staff = await signed_in(make_client, app, Role.staff, "frontdesk1")
    anonymous = await make_client()
    [item] = (await staff.get("/api/v1/staff/verifications")).json()
    # The queue shows MRN, birth date and phone: not for providers.
    assert (await provider.get("/api/v1/staff/verifications")).status_code == 403
    r = await provider.post(f"/api/v1/staff/verifications/{item['id']}/approve", json={})
    assert r.status_code == 403
    assert (await patient.get("/api/v1/staff/verifications")).status_code == 403
    assert (await anonymous.get("/api/v1/staff/verifications")).status_code == 401
    admin = await signed_in(make_client, app, Role.admin, "admin001")
    r = await admin.post("/api/v1/staff/verifications/999/approve", json={})
    assert r.status_code == 404
    assert smtp.messages == []


async def test_rejected_registration_frees_the_record_and_username(
    client: httpx.AsyncClient, app: Any, make_client: Any, session_factory: Factory, smtp: Any,
) -> None:
    await add_patient(session_factory, email=None)
    await client.post("/api/v1/auth/register", json=form(email="impostor@evil.example"))
    # While it waits, the record is not open to a second sign-up.
    await client.post("/api/v1/auth/register", json=form(username="zoe.real", email="zoe@home.example"))
    staff = await signed_in(make_client, app)
    [item] = (await staff.get("/api/v1/staff/verifications")).json()
    assert item["entered"]["email"] == "impostor@evil.example"

    r = await staff.post(f"/api/v1/staff/verifications/{item['id']}/reject", json={"reason": " "})
    assert r.status_code == 422 and field_messages(r, "reason")
    r = await staff.post(f"/api/v1/staff/verifications/{item['id']}/reject",
                         json={"reason": "Caller could not confirm the address on file"})
    assert r.status_code == 200 and r.json() == {"status": "rejected"}
    assert smtp.messages == []
    async with session_factory() as s:
        reg = await s.get(Registration, item["id"])
        assert reg is not None and reg.status == RegistrationStatus.rejected
        old = await s.get(User, reg.user_id)
        assert old is not None and old.status == UserStatus.disabled and old.patient_id is None

    # The same username and the record can now be registered, correctly this time.
    r = await client.post("/api/v1/auth/register", json=form(email="zoe@home.example"))
    assert r.status_code == 202
    [again] = (await staff.get("/api/v1/staff/verifications")).json()
    assert again["entered"]["email"] == "zoe@home.example"
    rejected_login = await client.post("/api/v1/auth/login",
                                       json={"username": f"~rejected~{old.id}", "password": "!"})
    assert rejected_login.status_code in (401, 422)


async def test_record_without_zip_goes_to_staff_even_with_an_email_on_file(
    client: httpx.AsyncClient, app: Any, make_client: Any, session_factory: Factory, smtp: Any,
) -> None:
    await add_patient(session_factory, zip_code=None)
    r = await client.post("/api/v1/auth/register", json=form())
    assert r.json() == CHECK_EMAIL
    assert smtp.messages == []
    staff = await signed_in(make_client, app)
    [item] = (await staff.get("/api/v1/staff/verifications")).json()
    assert item["patient"]["zip"] is None
    async with session_factory() as s:
        token_rows = (await s.exec(select(AccountToken).where(
            AccountToken.purpose == TokenPurpose.activation))).all()
        assert token_rows == []


async def test_openapi_describes_the_registration_routes(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    register = doc["paths"]["/api/v1/auth/register"]["post"]
    assert "202" in register["responses"]
    schema = doc["components"]["schemas"]["RegisterForm"]
    assert {"accept_terms", "accept_privacy", "security_answer"} <= set(schema["required"])
    assert "/api/v1/staff/verifications/{id}/approve" in doc["paths"]
