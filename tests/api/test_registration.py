"""Registration against the record on file, activation (where the username and
password are chosen), and the staff identity-verification queue, through the
public API."""

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
from rtc_server.auth import emailed_tokens
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
from rtc_server.db import utcnow
from rtc_server.portal.registration.activation import CHECKS_PER_LINK
from rtc_server.portal.registration.service import RECEIPT_PER_ADDRESS, REGISTER_PER_IP
from rtc_server.records.models import Patient
from rtc_server.rules import ZIP_PATTERN
from tests.harness import (
    create_patient,
    create_signed_in_user,
    create_user,
    token_from,
)

PASSWORD = "Harbor-Lantern-73q"
ANSWER = "Grandma Tilly's biscuits"
QUESTION = "What was the name of your first pet?"
STAFF_PASSWORD = "Staff-Desk-Pass-9"
RECEIVED = "We received your request"
#: The response floor the timing tests configure (tests run without one otherwise).
FLOOR = 0.3
with_floor = pytest.mark.settings(response_floor_seconds=FLOOR)
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

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
        "zip": "02139-4307", "email": "Zoe@Example.org",
        "accept_terms": True, "accept_privacy": True,
    }
    body.update(overrides)
    return body


def old_form(**overrides: Any) -> dict[str, Any]:
    """The form as it was sent before usernames moved to activation."""
    body = form(username="zoe.nunez", password=PASSWORD, security_question=QUESTION,
                security_answer=ANSWER)
    body.update(overrides)
    return body


def choice(**overrides: Any) -> dict[str, Any]:
    body = {"username": "zoe.nunez", "password": PASSWORD, "security_question": QUESTION,
            "security_answer": ANSWER}
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


async def activate(client: httpx.AsyncClient, token: str, **overrides: Any) -> httpx.Response:
    return await client.post("/api/v1/auth/activate", json={"token": token, **choice(**overrides)})


# --- finding 4: usernames are not revealed ------------------------------------

@with_floor
@BOTH_BACKENDS
async def test_register_answers_the_same_whether_or_not_the_username_exists(
    client: httpx.AsyncClient, make_client: Any, session_factory: Factory, smtp: Any,
) -> None:
    """Security review, finding 4: a taken username used to answer 422 at once."""
    await create_user(session_factory, "maria.alvarez", password="Other-Pass-Word-5")
    await create_user(session_factory, "clinicadmin", role=Role.admin, password="Other-Pass-Word-5")
    await add_patient(session_factory)  # a record that does match, for the third reply
    replies = []
    for body in (
        old_form(first_name="Nobody", username="maria.alvarez"),  # taken, details match nothing
        old_form(first_name="Nobody", username="CLINICADMIN"),  # taken (admin), case changed
        old_form(first_name="Nobody", username="free.name.here"),  # free
        old_form(username="maria.alvarez"),  # taken, and the details match a record
    ):
        c = await make_client()
        replies.append(await c.post("/api/v1/auth/register", json=body))
    assert [r.status_code for r in replies] == [202, 202, 202, 202]
    assert len({r.content for r in replies}) == 1
    assert len({frozenset(r.headers.keys()) for r in replies}) == 1
    for r in replies:
        assert r.elapsed.total_seconds() >= FLOOR
    async with session_factory() as s:
        users = (await s.exec(select(User.username).order_by(col(User.id)))).all()
    # The matched sign-up waits for its owner to choose a name; nobody got one here.
    assert users == ["maria.alvarez", "clinicadmin", ""]


async def test_the_register_form_no_longer_asks_for_a_username(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    schema = doc["components"]["schemas"]["RegisterForm"]
    assert "username" not in schema["properties"]
    assert "password" not in schema["properties"]
    assert {"first_name", "last_name", "birth_date", "zip", "email",
            "accept_terms", "accept_privacy"} == set(schema["required"])


# --- input rules -------------------------------------------------------------

async def test_sign_up_rules_are_published_for_the_pages(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/auth/sign-up-rules")
    assert r.status_code == 200
    rules = r.json()
    assert rules["zip_pattern"] == ZIP_PATTERN.pattern  # the one pattern (rtc_server.rules)
    assert (rules["username_min"], rules["username_max"]) == (6, 64)
    assert (rules["password_min"], rules["password_max"]) == (8, 128)
    # The security question obeys the rule Account Settings applies.
    assert (rules["question_min"], rules["question_max"]) == (5, 200)
    assert rules["review_business_days"] >= 1
    assert "letters, numbers" in rules["username_rule"]


async def test_password_policy_lists_the_rules(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/auth/password-policy")
    assert r.status_code == 200
    body = r.json()
    assert body["min_length"] == 8 and body["max_length"] == 128
    assert any("uppercase" in rule for rule in body["rules"])
    assert any("common" in rule for rule in body["rules"])


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
        ({"birth_date": "1899-12-31"}, "birth_date", "Check the year of your date of birth."),
        ({"zip": "0213"}, "zip", "Enter a 5-digit ZIP code, or ZIP+4 such as 12345-6789."),
        ({"zip": "02139-43"}, "zip", "Enter a 5-digit ZIP code, or ZIP+4 such as 12345-6789."),
        ({"zip": "ABCDE"}, "zip", "Enter a 5-digit ZIP code, or ZIP+4 such as 12345-6789."),
        ({"first_name": "  "}, "first_name", "Enter your first name as it appears in your record."),
        ({"last_name": "x" * 101}, "last_name", "Use at most 100 characters."),
        ({"email": "zoe@"}, "email", "Enter a valid email address, such as name@example.com."),
    ],
)
async def test_each_form_rule_names_its_field(
    client: httpx.AsyncClient, overrides: dict[str, Any], field: str, message: str
) -> None:
    r = await client.post("/api/v1/auth/register", json=form(**overrides))
    assert r.status_code == 422
    assert field_messages(r, field) == [message]


async def test_missing_checkbox_is_a_field_error(client: httpx.AsyncClient) -> None:
    body = form()
    del body["accept_privacy"]
    r = await client.post("/api/v1/auth/register", json=body)
    assert r.status_code == 422
    assert field_messages(r, "accept_privacy")


async def test_every_broken_rule_is_reported_at_once(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/register", json=form(
        zip="1", accept_terms=False, email="nope", first_name=""))
    fields = {f["field"] for f in r.json()["error"]["fields"]}
    assert fields == {"zip", "accept_terms", "email", "first_name"}


# --- matching and who is mailed ----------------------------------------------------

@with_floor
async def test_matching_and_non_matching_registrations_get_identical_replies(
    client: httpx.AsyncClient, make_client: Any, session_factory: Factory, smtp: Any,
    secrets_seen: set[str], drain_mail: Any,
) -> None:
    await add_patient(session_factory)
    other = await make_client()
    matched = await client.post("/api/v1/auth/register", json=form())
    unmatched = await other.post(
        "/api/v1/auth/register", json=form(birth_date="1984-03-13", email="someone@example.net"))
    assert matched.status_code == unmatched.status_code == 202
    # A match does more database work; neither answer comes back before the floor.
    assert matched.elapsed.total_seconds() >= FLOOR
    assert unmatched.elapsed.total_seconds() >= FLOOR
    assert matched.content == unmatched.content
    body = matched.json()
    assert body["status"] == "check_email"
    assert "business days" in body["message"] and body["review_business_days"] >= 1
    assert set(matched.headers) == set(unmatched.headers)

    await drain_mail()
    msgs = smtp.messages
    [activation] = smtp.to("zoe@example.org")
    # Only to the address on file, accents and case in the entered name notwithstanding.
    assert "Zoë" in smtp.text(activation)
    assert "choose your username and password" in smtp.text(activation)
    [link] = smtp.links(activation)
    assert link.startswith("http://testserver/activate.html?token=")
    token = token_from(link)
    secrets_seen.add(token)
    assert len(token) >= 22  # >= 128 bits
    html_part = activation.get_body(preferencelist=("html",))
    assert html_part is not None and "activate.html?token=" in html_part.get_content()
    # The stranger's address gets the general receipt, with no link.
    [receipt] = smtp.to("someone@example.net")
    assert RECEIVED in str(receipt["Subject"]) and smtp.links(receipt) == []
    assert len(msgs) == 2

    async with session_factory() as s:
        user = (await s.exec(select(User))).one()
        assert user.status == UserStatus.pending and user.role == Role.patient
        assert user.terms_version and user.privacy_version and user.terms_accepted_at
        # Nothing secret is kept before the owner is confirmed.
        assert user.username == "" and user.security_answer_hash is None
        assert not await verify_secret(user.password_hash, PASSWORD)
        token_row = (await s.exec(select(AccountToken))).one()
        assert token not in token_row.token_hash
        rows = (await s.exec(select(AuditEvent).where(AuditEvent.action == "registration.submit")
                             .order_by(col(AuditEvent.id)))).all()
        assert [r.outcome for r in rows] == ["success", "failure"]
        assert rows[0].patient_id == user.patient_id and rows[1].patient_id is None
        # Nobody was signed in: the new account is what the row is about, not who acted.
        assert rows[0].actor_id is None and rows[0].resource == f"user:{user.id}"
        assert all("@" not in (r.resource or "") for r in rows)


async def test_a_stranger_cannot_tell_staff_review_from_no_match_by_their_mail(
    client: httpx.AsyncClient, make_client: Any, session_factory: Factory, smtp: Any,
    drain_mail: Any,
) -> None:
    """The typed address gets the same single "request received" message whether
    the details matched a record that goes to staff review or matched nothing."""
    await add_patient(session_factory, email=None)  # no email on file: staff must check
    review = await client.post("/api/v1/auth/register", json=form(email="one@example.net"))
    other = await make_client()
    nothing = await other.post("/api/v1/auth/register",
                               json=form(first_name="Nobody", email="two@example.net"))
    assert review.status_code == nothing.status_code == 202
    assert review.content == nothing.content
    await drain_mail()
    [to_review] = smtp.to("one@example.net")
    [to_nothing] = smtp.to("two@example.net")
    assert str(to_review["Subject"]) == str(to_nothing["Subject"])
    assert smtp.text(to_review) == smtp.text(to_nothing)
    text_ = smtp.text(to_review)
    assert "a person at the clinic" in text_ and "2 business days" in text_
    assert "call the clinic" in text_
    assert len(smtp.messages) == 2
    async with session_factory() as s:
        reg = (await s.exec(select(Registration))).one()
        assert reg.status == RegistrationStatus.awaiting_verification


@pytest.mark.settings(verification_review_days=5)
async def test_review_time_on_the_page_and_in_the_mail_comes_from_settings(
    client: httpx.AsyncClient, app: Any, smtp: Any,
) -> None:
    if getattr(app.state.settings, "verification_review_days", None) != 5:
        pytest.skip("Settings.verification_review_days is not there yet (asked of H1)")
    rules = (await client.get("/api/v1/auth/sign-up-rules")).json()
    assert rules["review_business_days"] == 5
    r = await client.post("/api/v1/auth/register", json=form())
    assert r.json()["review_business_days"] == 5 and "5 business days" in r.json()["message"]
    [msg] = await smtp.wait_for(1)
    assert "5 business days" in smtp.text(msg)


async def test_record_without_zip_tells_its_own_address_that_a_person_will_check(
    client: httpx.AsyncClient, app: Any, make_client: Any, session_factory: Factory, smtp: Any,
    drain_mail: Any,
) -> None:
    await add_patient(session_factory, zip_code=None)
    r = await client.post("/api/v1/auth/register", json=form())
    assert r.status_code == 202
    await drain_mail()
    [msg] = smtp.messages
    assert str(msg["To"]) == "zoe@example.org"
    assert "is being checked" in str(msg["Subject"])
    assert "A person at the clinic will check your details" in smtp.text(msg)
    assert smtp.links(msg) == []
    staff = await signed_in(make_client, app)
    [item] = (await staff.get("/api/v1/staff/verifications")).json()
    assert item["patient"]["zip"] is None
    async with session_factory() as s:
        assert (await s.exec(select(AccountToken))).all() == []


async def test_entered_email_must_match_the_one_on_file(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, drain_mail: Any,
) -> None:
    await add_patient(session_factory)
    r = await client.post("/api/v1/auth/register", json=form(email="attacker@evil.example"))
    assert r.status_code == 202
    await drain_mail()
    [warning] = smtp.to("zoe@example.org")
    assert "Someone tried" in smtp.text(warning) and smtp.links(warning) == []
    [receipt] = smtp.to("attacker@evil.example")
    assert RECEIVED in str(receipt["Subject"]) and smtp.links(receipt) == []
    async with session_factory() as s:
        assert (await s.exec(select(User))).all() == []


async def test_ambiguous_and_deceased_records_match_nothing(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, drain_mail: Any,
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
        first_name="Ada", last_name="Lane", email="ada@example.org"))
    assert r1.content == r2.content
    await drain_mail()
    assert [RECEIVED in str(m["Subject"]) for m in smtp.messages] == [True, True]
    async with session_factory() as s:
        assert (await s.exec(select(User))).all() == []


async def test_receipts_to_one_typed_address_are_capped_silently(
    client: httpx.AsyncClient, smtp: Any, drain_mail: Any,
) -> None:
    replies = set()
    for i in range(RECEIPT_PER_ADDRESS[0] + 2):
        r = await client.post("/api/v1/auth/register",
                              json=form(first_name=f"Nobody{i}", email="victim@example.net"))
        replies.add((r.status_code, r.content))
    assert len(replies) == 1
    await drain_mail()
    assert len(smtp.to("victim@example.net")) == RECEIPT_PER_ADDRESS[0]


# --- activation: choosing the username ------------------------------------------

@BOTH_BACKENDS
async def test_patient_chooses_username_at_activation_then_logs_in(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    pid = await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))

    start = await client.post("/api/v1/auth/activate/start", json={"token": token})
    assert start.status_code == 200
    assert start.json() == {"step": "choose_credentials", "first_name": "zoe"}

    r = await activate(client, token, username="Zoe.Nunez")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "activated", "username": "Zoe.Nunez"}
    again = await activate(client, token, username="other.name")
    assert again.status_code == 410
    assert again.json()["error"]["code"] == "token_used"

    async with session_factory() as s:
        user = (await s.exec(select(User))).one()
        assert user.status == UserStatus.active and user.activated_at is not None
        assert user.email == "zoe@example.org" and user.patient_id == pid
        assert user.security_question == QUESTION
        assert user.security_answer_hash and ANSWER not in user.security_answer_hash
        # Stored like a password, compared case- and space-insensitively.
        assert await verify_secret(user.security_answer_hash,
                                   normalize_answer("grandma   TILLY'S  Biscuits"))
        reg = (await s.exec(select(Registration))).one()
        assert reg.status == RegistrationStatus.activated
        audit = (await s.exec(select(AuditEvent).where(AuditEvent.action == "account.activate",
                                                       AuditEvent.outcome == "success"))).one()
        assert audit.actor_id == user.id and audit.patient_id == pid

    login = await client.post("/api/v1/auth/login",
                              json={"username": "zoe.NUNEZ", "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.json()["status"] == "ok"
    assert login.json()["user"]["patient_id"] == pid
    # Account Settings start from the contact details on file.
    account = (await client.get("/api/v1/account")).json()
    assert account["phone"] == "617-555-0100"
    assert account["address"]["zip"] == "02139"


async def test_only_a_live_link_can_ask_whether_a_username_is_free(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    await create_user(session_factory, "maria.alvarez", password="Other-Pass-Word-5")
    for token in ("not-a-real-token", ""):
        r = await client.post("/api/v1/auth/activate/check",
                              json={"token": token, "username": "maria.alvarez"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "token_invalid"

    await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))

    async def check(**body: Any) -> dict[str, Any]:
        r = await client.post("/api/v1/auth/activate/check", json={"token": token, **body})
        assert r.status_code == 200, r.text
        return r.json()

    assert await check(username="Maria.Alvarez") == {
        "username_available": False,
        "fields": [{"field": "username", "message": "That username is taken; choose another."}]}
    assert await check(username="zoe.nunez") == {"username_available": True, "fields": []}
    assert await check(username="zo") == {
        "username_available": None,
        "fields": [{"field": "username", "message": "Use at least 6 characters."}]}
    common = await check(username="zoe.nunez", password="Password1")
    assert common["fields"] == [{"field": "password",
                                 "message": "This password is too common; choose another."}]
    contains = await check(username="zoe.nunez", password="Xzoe.nunez9")
    assert {"field": "password", "message": "Must not be or contain your username."} \
        in contains["fields"]
    # Checking used nothing up: the link still activates.
    assert (await activate(client, token)).status_code == 200
    r = await client.post("/api/v1/auth/activate/check", json={"token": token, "username": "abcdefg"})
    assert r.status_code == 410


async def test_looking_up_usernames_through_one_link_is_limited(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))
    for i in range(CHECKS_PER_LINK[0]):
        r = await client.post("/api/v1/auth/activate/check",
                              json={"token": token, "username": f"guess{i:04d}"})
        assert r.status_code == 200
    r = await client.post("/api/v1/auth/activate/check", json={"token": token, "username": "guess9999"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # Choosing a name on the activation form counts too.
    assert (await activate(client, token)).status_code == 429


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"username": "zoe"}, "username", "Use at least 6 characters."),
        ({"username": "zoe nunez"}, "username", "Use letters, numbers and . _ - @ + only."),
        ({"username": "x" * 65}, "username", "Use at most 64 characters."),
        ({"username": ""}, "username", "Choose a username."),
        ({"password": "Ab1cdef"}, "password", "Use at least 8 characters."),
        ({"password": "lowercase-only-77"}, "password", "Include at least one uppercase letter."),
        ({"password": "Xzoe.nunez9"}, "password", "Must not be or contain your username."),
        ({"password": "Password1"}, "password", "This password is too common; choose another."),
        ({"security_question": " "}, "security_question", "Choose or write a security question."),
        ({"security_question": "Pet?"}, "security_question",
         "Write a question of 5 to 200 characters."),
        ({"security_answer": "ab"}, "security_answer", "Write an answer of 3 to 200 characters."),
        ({"security_answer": PASSWORD}, "security_answer", "Your answer must not be your password."),
    ],
)
async def test_a_choice_that_breaks_a_rule_names_its_field_and_keeps_the_link(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str],
    overrides: dict[str, Any], field: str, message: str,
) -> None:
    await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))
    r = await activate(client, token, **overrides)
    assert r.status_code == 422
    assert message in field_messages(r, field)
    assert (await activate(client, token)).status_code == 200


async def test_security_question_rule_is_the_one_account_settings_applies(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    """A 1-character question used to pass sign-up and fail settings."""
    await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))
    refused = await activate(client, token, security_question="Pet?")
    assert (await activate(client, token, security_question="Pets?")).status_code == 200
    await client.post("/api/v1/auth/login", json={"username": "zoe.nunez", "password": PASSWORD})
    in_settings = await client.post("/api/v1/account/security-question", json={
        "current_password": PASSWORD, "security_question": "Pet?", "security_answer": ANSWER})
    assert in_settings.status_code == refused.status_code == 422
    assert field_messages(in_settings, "security_question") == \
        field_messages(refused, "security_question")
    same = await client.post("/api/v1/account/security-question", json={
        "current_password": PASSWORD, "security_question": "Pets?", "security_answer": ANSWER})
    assert same.status_code == 200


@BOTH_BACKENDS
async def test_two_sign_ups_cannot_choose_the_same_username(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    await add_patient(session_factory)
    await add_patient(session_factory, given="Ada", family="Lane", email="ada@example.org", mrn="M2")
    zoe = token_from(await register_and_get_link(client, smtp, secrets_seen))
    ada = token_from(await register_and_get_link(
        client, smtp, secrets_seen, first_name="Ada", last_name="Lane", email="ada@example.org"))
    assert (await activate(client, zoe, username="same.name")).status_code == 200
    r = await activate(client, ada, username="SAME.name", password="Another-Lantern-99")
    assert r.status_code == 422
    assert field_messages(r, "username") == ["That username is taken; choose another."]
    r = await activate(client, ada, username="ada.lane", password="Another-Lantern-99")
    assert r.status_code == 200


async def test_an_older_pending_account_activates_with_the_link_alone(
    client: httpx.AsyncClient, session_factory: Factory, secrets_seen: set[str]
) -> None:
    """Sign-ups made before usernames moved to activation already have one."""
    pid = await add_patient(session_factory)
    user_id = await create_user(session_factory, "zoe.before", status=UserStatus.pending,
                                patient_id=pid)
    async with session_factory() as s:
        token = await emailed_tokens.issue(s, user_id=user_id, purpose=TokenPurpose.activation,
                                           email="zoe@example.org")
        await s.commit()
    secrets_seen.add(token)
    start = await client.post("/api/v1/auth/activate/start", json={"token": token})
    assert start.json()["step"] == "ready"
    r = await client.post("/api/v1/auth/activate", json={"token": token})
    assert r.status_code == 200 and r.json() == {"status": "activated", "username": "zoe.before"}


async def test_a_lapsed_pending_sign_up_gives_up_its_username(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str]
) -> None:
    await create_user(session_factory, "zoe.nunez", status=UserStatus.pending)  # never activated
    await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))
    checked = await client.post("/api/v1/auth/activate/check",
                                json={"token": token, "username": "zoe.nunez"})
    assert checked.json()["username_available"] is True
    assert (await activate(client, token)).status_code == 200
    async with session_factory() as s:
        users = (await s.exec(select(User.username, User.status))).all()
    assert users == [("zoe.nunez", UserStatus.active)]


async def test_expired_and_unknown_activation_links_fail_then_resend_works(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str],
    drain_mail: Any,
) -> None:
    await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))
    async with session_factory() as s:
        await s.exec(update(AccountToken).values(expires_at=utcnow() - timedelta(minutes=1)))
        await s.commit()
    r = await client.post("/api/v1/auth/activate/start", json={"token": token})
    assert r.status_code == 410 and r.json()["error"]["code"] == "token_expired"
    r = await activate(client, token)
    assert r.status_code == 410 and r.json()["error"]["code"] == "token_expired"
    r = await activate(client, "not-a-real-token")
    assert r.status_code == 404 and r.json()["error"]["code"] == "token_invalid"

    nobody = await client.post("/api/v1/auth/activate/resend", json={"email": "nobody@example.org"})
    resent = await client.post("/api/v1/auth/activate/resend", json={"email": "ZOE@example.org"})
    assert nobody.status_code == resent.status_code == 202
    assert nobody.content == resent.content == b'{"status":"check_email"}'
    await drain_mail()
    msgs = smtp.messages
    assert len(msgs) == 2 and str(msgs[1]["To"]) == "zoe@example.org"
    new_token = token_from(smtp.links(msgs[1])[0])
    secrets_seen.add(new_token)
    assert (await activate(client, new_token)).status_code == 200


async def test_a_record_with_an_account_is_not_taken_over(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str],
    drain_mail: Any,
) -> None:
    await add_patient(session_factory)
    token = token_from(await register_and_get_link(client, smtp, secrets_seen))
    assert (await activate(client, token)).status_code == 200

    # The owner again, with the address on file: only the "someone tried" note.
    r = await client.post("/api/v1/auth/register", json=form())
    assert r.status_code == 202
    await drain_mail()
    msgs = smtp.messages
    assert len(msgs) == 2 and str(msgs[1]["To"]) == "zoe@example.org"
    assert smtp.links(msgs[1]) == [] and "Someone tried" in smtp.text(msgs[1])
    # Someone else, with their own address: the owner is told, they get the receipt.
    r = await client.post("/api/v1/auth/register", json=form(email="other@evil.example"))
    await drain_mail()
    assert len(smtp.to("zoe@example.org")) == 3
    [receipt] = smtp.to("other@evil.example")
    assert RECEIVED in str(receipt["Subject"])
    async with session_factory() as s:
        users = (await s.exec(select(User))).all()
        assert [u.username for u in users] == ["zoe.nunez"]


async def test_live_pending_registration_blocks_a_second_one_until_its_link_expires(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, secrets_seen: set[str],
    drain_mail: Any,
) -> None:
    await add_patient(session_factory)
    await register_and_get_link(client, smtp, secrets_seen)
    r = await client.post("/api/v1/auth/register", json=form())
    assert r.status_code == 202
    await drain_mail()
    assert len(smtp.messages) == 2
    assert smtp.links(smtp.messages[-1]) == []  # a receipt; no second link while the first is live

    async with session_factory() as s:
        await s.exec(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        await s.commit()
    # The stale sign-up gives way: its record is free again.
    link = await register_and_get_link(client, smtp, secrets_seen)
    assert (await activate(client, token_from(link))).status_code == 200
    async with session_factory() as s:
        users = (await s.exec(select(User))).all()
        assert [(u.username, u.status) for u in users] == [("zoe.nunez", UserStatus.active)]


# --- throttling --------------------------------------------------------------

async def test_registration_is_throttled_per_ip_with_retry_after(
    client: httpx.AsyncClient, session_factory: Factory
) -> None:
    for i in range(10):
        r = await client.post("/api/v1/auth/register", json=form(first_name=f"Nobody{i}"))
        assert r.status_code == 202
    r = await client.post("/api/v1/auth/register", json=form(first_name="Nobody11"))
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0
    async with session_factory() as s:
        denied = (await s.exec(select(AuditEvent).where(
            AuditEvent.action == "registration.submit", AuditEvent.outcome == "denied"))).all()
    assert [(d.request_id, d.actor_id) for d in denied] == [(r.json()["error"]["request_id"], None)]


async def test_parallel_sign_ups_cannot_outrun_the_address_limit(client: httpx.AsyncClient) -> None:
    replies = await asyncio.gather(*(
        client.post("/api/v1/auth/register", json=form(first_name=f"Parallel{i}"))
        for i in range(14)
    ))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [202] * REGISTER_PER_IP[0] + [429] * (14 - REGISTER_PER_IP[0])


async def test_a_conflict_while_saving_the_registration_still_gets_the_same_reply(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, drain_mail: Any,
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
    assert r.status_code == 202
    async with session_factory() as s:
        assert (await s.exec(select(User))).all() == []
        assert (await s.exec(select(AccountToken))).all() == []
        rows = (await s.exec(select(AuditEvent.outcome, AuditEvent.resource).where(
            AuditEvent.action == "registration.submit"))).all()
    assert rows == [("failure", "registration:conflict")]
    await drain_mail()
    # The typed address (here the one on file) gets the receipt, never a link.
    assert [smtp.links(m) for m in smtp.messages] == [[]]


async def test_attempts_on_one_record_are_capped_without_changing_the_reply(
    client: httpx.AsyncClient, session_factory: Factory, smtp: Any, drain_mail: Any,
) -> None:
    await add_patient(session_factory)
    replies = []
    for i in range(4):
        r = await client.post("/api/v1/auth/register", json=form(email=f"wrong{i}@evil.example"))
        replies.append((r.status_code, r.content))
    assert len(set(replies)) == 1 and replies[0][0] == 202
    await drain_mail()
    # Three warnings reached the patient; the fourth attempt was silently dropped.
    assert len(smtp.to("zoe@example.org")) == 3
    assert all(len(smtp.to(f"wrong{i}@evil.example")) == 1 for i in range(4))
    async with session_factory() as s:
        rows = (await s.exec(select(AuditEvent).where(
            AuditEvent.action == "registration.submit").order_by(col(AuditEvent.id)))).all()
        assert [r.resource for r in rows][-1] == "registration:throttled"


# --- records without email or zip: staff verification -------------------------

@with_floor
async def test_record_without_email_waits_for_staff_then_activates(
    client: httpx.AsyncClient, app: Any, make_client: Any, session_factory: Factory, smtp: Any,
    secrets_seen: set[str], drain_mail: Any,
) -> None:
    pid = await add_patient(session_factory, email=None)
    r = await client.post("/api/v1/auth/register", json=form(email="zoe.new@example.net"))
    assert r.status_code == 202
    await drain_mail()
    [receipt] = smtp.messages  # "request received", at once
    assert str(receipt["To"]) == "zoe.new@example.net" and smtp.links(receipt) == []

    staff = await signed_in(make_client, app)
    r = await staff.get("/api/v1/staff/verifications")
    assert r.status_code == 200
    [item] = r.json()
    assert item["entered"] == {"first_name": "zoe", "last_name": "NUNEZ ORTIZ",
                               "birth_date": "1984-03-12", "zip": "02139-4307",
                               "email": "zoe.new@example.net"}
    assert item["patient"] == {"id": pid, "name": "Zoë Núñez-Ortiz", "birth_date": "1984-03-12",
                               "zip": "02139", "email": None, "mrn": "MRN-1001",
                               "phone": "617-555-0100"}

    # Nobody can activate without a link, and resend does not bypass staff.
    r = await client.post("/api/v1/auth/activate/resend", json={"email": "zoe.new@example.net"})
    assert r.status_code == 202 and r.elapsed.total_seconds() >= FLOOR
    await drain_mail()
    assert len(smtp.messages) == 1

    r = await staff.post(f"/api/v1/staff/verifications/{item['id']}/approve",
                         json={"note": "Confirmed by phone with photo ID"})
    assert r.status_code == 200 and r.json() == {"status": "approved"}
    msgs = await smtp.wait_for(2)
    assert str(msgs[1]["To"]) == "zoe.new@example.net"
    token = token_from(smtp.links(msgs[1])[0])
    secrets_seen.add(token)
    assert (await staff.get("/api/v1/staff/verifications")).json() == []
    again = await staff.post(f"/api/v1/staff/verifications/{item['id']}/approve", json={})
    assert again.status_code == 409

    # The same activation step as everyone: choose the username there.
    start = await client.post("/api/v1/auth/activate/start", json={"token": token})
    assert start.json()["step"] == "choose_credentials"
    assert (await activate(client, token)).status_code == 200
    login = await client.post("/api/v1/auth/login", json={"username": "zoe.nunez", "password": PASSWORD})
    assert login.status_code == 200 and login.json()["user"]["patient_id"] == pid
    async with session_factory() as s:
        user = (await s.exec(select(User).where(User.username == "zoe.nunez"))).one()
        assert user.email == "zoe.new@example.net"
        actions = (await s.exec(select(AuditEvent.action, AuditEvent.patient_id, AuditEvent.actor_id)
                                .where(AuditEvent.action == "registration.approve"))).all()
        assert len(actions) == 1 and actions[0][1] == pid and actions[0][2] is not None


async def test_only_staff_and_admins_see_and_decide_the_queue_and_refusals_are_audited(
    client: httpx.AsyncClient, app: Any, make_client: Any, session_factory: Factory, smtp: Any,
    drain_mail: Any,
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
    r = await patient.post(f"/api/v1/staff/verifications/{item['id']}/reject",
                           json={"reason": "because"})
    assert r.status_code == 403
    assert (await anonymous.get("/api/v1/staff/verifications")).status_code == 401
    admin = await signed_in(make_client, app, Role.admin, "admin001")
    r = await admin.post("/api/v1/staff/verifications/999/approve", json={})
    assert r.status_code == 404
    async with session_factory() as s:
        denied = (await s.exec(
            select(AuditEvent.action, AuditEvent.actor_role, AuditEvent.resource)
            .where(AuditEvent.outcome == "denied").order_by(col(AuditEvent.id)))).all()
        reg = (await s.exec(select(Registration))).one()
    assert denied == [
        ("registration.verification.view", "provider", "registration:queue"),
        ("registration.approve", "provider", f"registration:{item['id']}"),
        ("registration.verification.view", "patient", "registration:queue"),
        ("registration.reject", "patient", f"registration:{item['id']}"),
    ]
    assert reg.status == RegistrationStatus.awaiting_verification
    await drain_mail()
    assert all(RECEIVED in str(m["Subject"]) for m in smtp.messages)


async def test_rejected_registration_frees_the_record(
    client: httpx.AsyncClient, app: Any, make_client: Any, session_factory: Factory, smtp: Any,
    drain_mail: Any,
) -> None:
    await add_patient(session_factory, email=None)
    await client.post("/api/v1/auth/register", json=form(email="impostor@evil.example"))
    # While it waits, the record is not open to a second sign-up.
    await client.post("/api/v1/auth/register", json=form(email="zoe@home.example"))
    staff = await signed_in(make_client, app)
    [item] = (await staff.get("/api/v1/staff/verifications")).json()
    assert item["entered"]["email"] == "impostor@evil.example"

    r = await staff.post(f"/api/v1/staff/verifications/{item['id']}/reject", json={"reason": " "})
    assert r.status_code == 422 and field_messages(r, "reason")
    await drain_mail()
    before = len(smtp.messages)
    r = await staff.post(f"/api/v1/staff/verifications/{item['id']}/reject",
                         json={"reason": "Caller could not confirm the address on file"})
    assert r.status_code == 200 and r.json() == {"status": "rejected"}
    await drain_mail()
    assert len(smtp.messages) == before  # nobody is told the record exists
    async with session_factory() as s:
        reg = await s.get(Registration, item["id"])
        assert reg is not None and reg.status == RegistrationStatus.rejected
        old = await s.get(User, reg.user_id)
        assert old is not None and old.status == UserStatus.disabled and old.patient_id is None

    # The record can now be registered again, correctly this time.
    r = await client.post("/api/v1/auth/register", json=form(email="zoe@home.example"))
    assert r.status_code == 202
    [again] = (await staff.get("/api/v1/staff/verifications")).json()
    assert again["entered"]["email"] == "zoe@home.example"


async def test_openapi_describes_the_registration_routes(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    register = doc["paths"]["/api/v1/auth/register"]["post"]
    assert "202" in register["responses"]
    for path in ("/api/v1/auth/activate/start", "/api/v1/auth/activate/check",
                 "/api/v1/auth/activate", "/api/v1/auth/sign-up-rules",
                 "/api/v1/staff/verifications/{id}/approve"):
        assert path in doc["paths"]
    activate_in = doc["components"]["schemas"]["ActivateIn"]
    assert {"token", "username", "password", "security_question", "security_answer"} <= \
        set(activate_in["properties"])
