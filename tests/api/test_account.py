"""Account Settings: contact details (a new email only after its link),
username, password, security question, notification choices."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlmodel import select

from rtc_server.audit import AuditEvent
from rtc_server.auth import emailed_tokens
from rtc_server.auth.models import TokenPurpose, User
from rtc_server.auth.passwords import normalize_answer, verify_secret
from tests.harness import PASSWORD, create_user, sign_in

EMAIL = "maria.lopez@example.org"


async def signed_in_patient(
    client, session_factory, secrets_seen, username: str = "maria.lopez",
    display_name: str = "Maria Lopez",
) -> int:
    user_id = await create_user(session_factory, username, display_name=display_name)
    await sign_in(client, username, secrets_seen)
    return user_id


async def audit_actions(session_factory) -> list[str]:
    async with session_factory() as s:
        return [e.action for e in (await s.exec(select(AuditEvent))).all()]


def field_errors(r) -> dict[str, str]:
    return {f["field"]: f["message"] for f in r.json()["error"]["fields"]}


def token_in(smtp, msg) -> str:
    link = next(x for x in smtp.links(msg) if "token=" in x)
    return parse_qs(urlsplit(link).query)["token"][0]


async def request_email_change(client, smtp, secrets_seen, address: str) -> str:
    """Ask for a new address (with the password); the token of the link mailed to it."""
    sent = len(smtp.messages)
    r = await client.patch("/api/v1/account/contact",
                           json={"email": address, "current_password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["pending_email"] == address
    await smtp.wait_for(sent + 2)  # the link to the new address, the notice to the current one
    token = token_in(smtp, smtp.to(address)[-1])
    secrets_seen.add(token)
    return token


async def test_account_shows_settings_and_no_secrets(client, session_factory, secrets_seen) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    r = await client.get("/api/v1/account")
    assert r.status_code == 200
    body = r.json()
    assert body["username"] == "maria.lopez"
    assert body["email"] == EMAIL and body["pending_email"] is None
    assert body["role"] == "patient" and body["mfa_required"] is False
    assert body["address"] == {"line": None, "city": None, "state": None, "zip": None}
    assert body["notifications"]["lab_results"] == {"email": True, "sms": False}
    assert set(body["notifications"]) == {"appointment_reminders", "new_messages", "lab_results",
                                          "refill_updates"}
    assert "password_hash" not in r.text and "security_answer" not in r.text and "mfa_secret" not in r.text


async def test_account_needs_a_session(client) -> None:
    assert (await client.get("/api/v1/account")).status_code == 401
    assert (await client.patch("/api/v1/account/contact", json={"phone": "555 010 1234"})).status_code == 401


async def test_phone_and_address_change_at_once(client, session_factory, secrets_seen) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    r = await client.patch("/api/v1/account/contact", json={
        "phone": "+1 555 010 1234",
        "address": {"line": "12 Elm St", "city": "Springfield", "state": "MA", "zip": "01101"},
    })
    assert r.status_code == 200
    assert r.json()["phone"] == "+1 555 010 1234"
    assert r.json()["address"]["city"] == "Springfield"
    assert (await client.get("/api/v1/account")).json()["address"]["zip"] == "01101"
    bad = await client.patch("/api/v1/account/contact", json={"phone": "call me", "address": {"zip": "12"}})
    assert bad.status_code == 422
    assert set(field_errors(bad)) == {"phone", "address.zip"}
    assert "account.contact_update" in await audit_actions(session_factory)


async def test_new_email_waits_for_its_confirmation_link(
    client, make_client, session_factory, smtp, secrets_seen
) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    r = await client.patch("/api/v1/account/contact",
                           json={"email": "maria.new@example.org", "current_password": PASSWORD})
    assert r.status_code == 200
    assert r.json()["email"] == EMAIL
    assert r.json()["pending_email"] == "maria.new@example.org"

    await smtp.wait_for(2)
    [confirm_mail] = smtp.to("maria.new@example.org")
    [notice] = smtp.to(EMAIL)
    assert "email address" in smtp.text(notice)
    assert not smtp.links(notice) or all("token=" not in link for link in smtp.links(notice))
    link = next(x for x in smtp.links(confirm_mail) if "/confirm-email.html" in x)
    assert link.startswith("http://testserver/confirm-email.html?token=")
    token = parse_qs(urlsplit(link).query)["token"][0]
    secrets_seen.add(token)

    # The link works without a session (opened on another device), once.
    anonymous = await make_client()
    ok = await anonymous.post("/api/v1/account/email/confirm", json={"token": token})
    assert ok.status_code == 200
    after = (await client.get("/api/v1/account")).json()
    assert after["email"] == "maria.new@example.org" and after["pending_email"] is None
    reused = await anonymous.post("/api/v1/account/email/confirm", json={"token": token})
    assert reused.status_code == 410
    assert reused.json()["error"]["code"] == "token_used"
    bogus = await anonymous.post("/api/v1/account/email/confirm", json={"token": "not-a-real-token"})
    assert bogus.status_code == 404
    actions = await audit_actions(session_factory)
    assert "account.email_change_request" in actions and "account.email_change" in actions


async def test_invalid_email_is_named(client, session_factory, secrets_seen) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    r = await client.patch("/api/v1/account/contact", json={"email": "not-an-email"})
    assert r.status_code == 422
    assert "email" in field_errors(r)


async def test_username_change_needs_the_password_and_a_free_name(
    client, make_client, session_factory, secrets_seen
) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    await create_user(session_factory, "john.smith", email=None)

    wrong = await client.post("/api/v1/account/username",
                              json={"username": "maria.l2", "current_password": "Bad-Guess-99"})
    assert wrong.status_code == 422 and "current_password" in field_errors(wrong)
    taken = await client.post("/api/v1/account/username",
                              json={"username": "JOHN.SMITH", "current_password": PASSWORD})
    assert taken.status_code == 422 and "username" in field_errors(taken)
    short = await client.post("/api/v1/account/username",
                              json={"username": "ml", "current_password": PASSWORD})
    assert short.status_code == 422 and "username" in field_errors(short)

    ok = await client.post("/api/v1/account/username",
                           json={"username": "MariaL.2024", "current_password": PASSWORD})
    assert ok.status_code == 200
    assert ok.json()["username"] == "MariaL.2024"
    fresh = await make_client()
    assert (await fresh.post("/api/v1/auth/login",
                             json={"username": "marial.2024", "password": PASSWORD})).status_code == 200
    old = await make_client()
    assert (await old.post("/api/v1/auth/login",
                           json={"username": "maria.lopez", "password": PASSWORD})).status_code == 401
    assert "account.username_change" in await audit_actions(session_factory)


async def test_password_change_ends_other_sessions_and_mails_a_notice(
    client, make_client, session_factory, smtp, secrets_seen
) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    laptop = await make_client()
    await laptop.post("/api/v1/auth/login", json={"username": "maria.lopez", "password": PASSWORD})
    new_password = "Quiet-River-Stone-27"
    secrets_seen.add(new_password)

    weak = await client.post("/api/v1/account/password",
                             json={"current_password": PASSWORD, "new_password": "short"})
    assert weak.status_code == 422 and set(field_errors(weak)) == {"new_password"}
    with_name = await client.post("/api/v1/account/password",
                                  json={"current_password": PASSWORD, "new_password": "Maria.Lopez-1999"})
    assert with_name.status_code == 422
    assert "username" in field_errors(with_name)["new_password"]
    wrong = await client.post("/api/v1/account/password",
                              json={"current_password": "Nope-Nope-123", "new_password": new_password})
    assert wrong.status_code == 422 and "current_password" in field_errors(wrong)

    ok = await client.post("/api/v1/account/password",
                           json={"current_password": PASSWORD, "new_password": new_password})
    assert ok.status_code == 200
    assert (await laptop.get("/api/v1/account")).status_code == 401
    assert (await client.get("/api/v1/account")).status_code == 200
    await smtp.wait_for(1)
    assert any("password" in smtp.text(m) for m in smtp.to(EMAIL))
    assert all(new_password not in smtp.text(m) for m in smtp.messages)

    fresh = await make_client()
    assert (await fresh.post("/api/v1/auth/login",
                             json={"username": "maria.lopez", "password": new_password})).status_code == 200
    assert "password.change" in await audit_actions(session_factory)


async def test_security_question_is_stored_hashed_and_never_returned(
    client, session_factory, secrets_seen
) -> None:
    user_id = await signed_in_patient(client, session_factory, secrets_seen)
    answer = "Grandma Rosa's Kitchen"
    secrets_seen.add(answer)
    missing = await client.post("/api/v1/account/security-question", json={
        "current_password": PASSWORD, "security_question": "Why?", "security_answer": "x",
    })
    assert missing.status_code == 422
    assert set(field_errors(missing)) == {"security_question", "security_answer"}
    r = await client.post("/api/v1/account/security-question", json={
        "current_password": PASSWORD, "security_question": "Where did you eat on Sundays?",
        "security_answer": answer,
    })
    assert r.status_code == 200
    assert r.json()["security_question"] == "Where did you eat on Sundays?"
    assert answer not in r.text and answer.casefold() not in r.text
    async with session_factory() as s:
        stored = (await s.get(User, user_id)).security_answer_hash
    assert stored.startswith("$argon2id$")
    assert await verify_secret(stored, normalize_answer("  grandma ROSA'S   kitchen "))


async def test_notification_choices_are_validated_strictly(client, session_factory, secrets_seen) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    unknown = await client.put("/api/v1/account/notifications",
                               json={"lab_results": {"email": True, "sms": False},
                                     "weather_alerts": {"email": True, "sms": False}})
    assert unknown.status_code == 422
    assert "weather_alerts" in field_errors(unknown)
    not_bool = await client.put("/api/v1/account/notifications",
                                json={"lab_results": {"email": "yes", "sms": False}})
    assert not_bool.status_code == 422 and "lab_results.email" in field_errors(not_bool)
    no_phone = await client.put("/api/v1/account/notifications",
                                json={"new_messages": {"email": True, "sms": True}})
    assert no_phone.status_code == 422 and "new_messages.sms" in field_errors(no_phone)

    await client.patch("/api/v1/account/contact", json={"phone": "555 010 7777"})
    ok = await client.put("/api/v1/account/notifications", json={
        "appointment_reminders": {"email": False, "sms": True},
        "new_messages": {"email": True, "sms": True},
        "lab_results": {"email": True, "sms": False},
        "refill_updates": {"email": False, "sms": False},
    })
    assert ok.status_code == 200
    prefs = (await client.get("/api/v1/account")).json()["notifications"]
    assert prefs["appointment_reminders"] == {"email": False, "sms": True}
    assert prefs["refill_updates"] == {"email": False, "sms": False}
    assert "account.notifications_update" in await audit_actions(session_factory)


async def test_wrong_current_passwords_count_toward_the_lock(
    client, make_client, session_factory, secrets_seen
) -> None:
    from rtc_server.auth import login

    await signed_in_patient(client, session_factory, secrets_seen)
    for _ in range(login.LOCK_AFTER):
        r = await client.post("/api/v1/account/password",
                              json={"current_password": "Guessing-Again-1", "new_password": "Other-Thing-99"})
        assert r.status_code == 422
    fresh = await make_client()
    r = await fresh.post("/api/v1/auth/login", json={"username": "maria.lopez", "password": PASSWORD})
    assert r.status_code == 401


async def test_email_change_needs_the_current_password(
    client, session_factory, smtp, secrets_seen
) -> None:

    user_id = await signed_in_patient(client, session_factory, secrets_seen)
    missing = await client.patch("/api/v1/account/contact",
                                 json={"email": "attacker@evil.example", "phone": "555 010 4444"})
    assert missing.status_code == 422
    assert set(field_errors(missing)) == {"current_password"}
    wrong = await client.patch("/api/v1/account/contact",
                               json={"email": "attacker@evil.example", "current_password": "Guess-Guess-12"})
    assert wrong.status_code == 422
    assert set(field_errors(wrong)) == {"current_password"}

    account = (await client.get("/api/v1/account")).json()
    assert account["pending_email"] is None and account["phone"] is None  # nothing applied
    assert smtp.to("attacker@evil.example") == []
    async with session_factory() as s:
        assert (await s.get(User, user_id)).failed_logins == 1  # the wrong one counted
    assert "account.reauth_failure" in await audit_actions(session_factory)
    # Giving the current address again (or none) needs no password.
    same = await client.patch("/api/v1/account/contact",
                              json={"email": EMAIL.upper(), "phone": "555 010 4444"})
    assert same.status_code == 200 and same.json()["phone"] == "555 010 4444"


async def test_a_cancelled_email_change_link_stops_working(
    client, make_client, session_factory, smtp, secrets_seen
) -> None:
    """A hijacked session asks for the attacker's address; the owner changes it
    back; the saved link must not move the account afterwards."""
    await signed_in_patient(client, session_factory, secrets_seen)
    token = await request_email_change(client, smtp, secrets_seen, "attacker@evil.example")

    back = await client.patch("/api/v1/account/contact", json={"email": EMAIL})
    assert back.status_code == 200
    assert back.json()["pending_email"] is None

    anonymous = await make_client()
    r = await anonymous.post("/api/v1/account/email/confirm", json={"token": token})
    assert r.status_code in (404, 410)
    assert r.json()["error"]["code"] in ("token_invalid", "token_used")
    account = (await client.get("/api/v1/account")).json()
    assert account["email"] == EMAIL and account["pending_email"] is None
    assert "account.email_change_cancel" in await audit_actions(session_factory)


async def test_asking_for_another_address_spends_the_first_link(
    client, make_client, session_factory, smtp, secrets_seen
) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    first = await request_email_change(client, smtp, secrets_seen, "attacker@evil.example")
    second = await request_email_change(client, smtp, secrets_seen, "maria.new@example.org")
    anonymous = await make_client()
    assert (await anonymous.post("/api/v1/account/email/confirm", json={"token": first})).status_code == 410
    assert (await anonymous.post("/api/v1/account/email/confirm", json={"token": second})).status_code == 200
    assert (await client.get("/api/v1/account")).json()["email"] == "maria.new@example.org"


async def test_a_link_whose_address_is_no_longer_pending_is_refused(
    client, make_client, session_factory, secrets_seen
) -> None:
    """Belt and braces: even a live token only confirms the address still pending."""
    user_id = await signed_in_patient(client, session_factory, secrets_seen)
    async with session_factory() as s:
        token = await emailed_tokens.issue(s, user_id=user_id, purpose=TokenPurpose.email_change,
                                           email="attacker@evil.example")
        await s.commit()
    secrets_seen.add(token)
    anonymous = await make_client()
    r = await anonymous.post("/api/v1/account/email/confirm", json={"token": token})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "token_invalid"
    assert (await client.get("/api/v1/account")).json()["email"] == EMAIL
    async with session_factory() as s:
        rows = (await s.exec(select(AuditEvent).where(AuditEvent.action == "account.email_change"))).all()
    assert [r.outcome for r in rows] == ["failure"]


async def test_password_change_spends_emailed_links(
    client, make_client, session_factory, smtp, secrets_seen
) -> None:
    user_id = await signed_in_patient(client, session_factory, secrets_seen)
    email_token = await request_email_change(client, smtp, secrets_seen, "maria.new@example.org")
    async with session_factory() as s:
        reset_token = await emailed_tokens.issue(s, user_id=user_id, purpose=TokenPurpose.password_reset,
                                                 email=EMAIL)
        await s.commit()
    secrets_seen.add(reset_token)
    new_password = "Quiet-River-Stone-27"
    secrets_seen.add(new_password)
    ok = await client.post("/api/v1/account/password",
                           json={"current_password": PASSWORD, "new_password": new_password})
    assert ok.status_code == 200

    anonymous = await make_client()
    r = await anonymous.post("/api/v1/account/email/confirm", json={"token": email_token})
    assert r.status_code == 410
    r = await anonymous.post("/api/v1/auth/password/reset/start", json={"token": reset_token})
    assert r.status_code == 410
    account = (await client.get("/api/v1/account")).json()
    assert account["email"] == EMAIL and account["pending_email"] is None


async def test_notices_have_an_html_part_with_the_name_escaped(
    client, session_factory, smtp, secrets_seen
) -> None:
    await signed_in_patient(client, session_factory, secrets_seen, display_name="Maria <b>Lopez</b> & Co")
    r = await client.post("/api/v1/account/security-question", json={
        "current_password": PASSWORD, "security_question": "Where did you eat on Sundays?",
        "security_answer": "Grandma's kitchen",
    })
    assert r.status_code == 200
    secrets_seen.add("Grandma's kitchen")
    await smtp.wait_for(1)
    [notice] = smtp.to(EMAIL)
    assert "security question" in smtp.text(notice)
    assert "Maria <b>Lopez</b> & Co" in smtp.text(notice)
    html = notice.get_body(preferencelist=("html",)).get_content()
    assert "Maria &lt;b&gt;Lopez&lt;/b&gt; &amp; Co" in html and "<b>" not in html
    assert "Grandma" not in smtp.text(notice) and "Grandma" not in html


async def test_ten_wrong_current_passwords_are_ten_field_errors_on_sqlite(
    client, session_factory, secrets_seen, drain_mail, smtp
) -> None:
    """The tenth used to be a 500: locking again compared the stored (naive,
    on SQLite) lock time with an aware one."""
    user_id = await signed_in_patient(client, session_factory, secrets_seen)
    statuses = []
    for i in range(10):
        r = await client.post("/api/v1/account/password", json={
            "current_password": f"Guessing-Again-{i}", "new_password": "Other-Thing-99"})
        statuses.append(r.status_code)
    assert statuses == [422] * 10
    async with session_factory() as s:
        user = await s.get(User, user_id)
        assert user.locked_until is not None and user.locked_until.tzinfo is not None
    await drain_mail()
    assert len([m for m in smtp.to(EMAIL) if "locked" in smtp.text(m)]) == 1


async def test_contact_accepts_the_zip_forms_registration_accepts(
    client, session_factory, secrets_seen
) -> None:
    """One ZIP rule (``rtc_server.rules``): sign-up took 123456789, settings refused it."""
    await signed_in_patient(client, session_factory, secrets_seen)
    for zip_code in ("10001", "10001-1234", "100011234"):
        r = await client.patch("/api/v1/account/contact", json={"address": {"zip": zip_code}})
        assert r.status_code == 200, (zip_code, r.text)
        assert r.json()["address"]["zip"] == zip_code
    for zip_code in ("1000", "10001-12", "ABCDE"):
        r = await client.patch("/api/v1/account/contact", json={"address": {"zip": zip_code}})
        assert r.status_code == 422 and "address.zip" in field_errors(r)


async def test_the_security_question_rule_is_the_shared_one(client, session_factory, secrets_seen) -> None:
    from rtc_server import rules

    await signed_in_patient(client, session_factory, secrets_seen)
    short = await client.post("/api/v1/account/security-question", json={
        "current_password": PASSWORD, "security_question": "Pet?", "security_answer": "Rex the dog"})
    assert short.status_code == 422
    assert field_errors(short) == {"security_question": rules.question_problem("Pet?")}
    same = await client.post("/api/v1/account/security-question", json={
        "current_password": PASSWORD, "security_question": "First pet's name?",
        "security_answer": PASSWORD})
    assert field_errors(same) == {"security_answer": "Your answer must not be your password."}


async def test_a_chosen_time_zone_is_kept_shown_with_the_session_and_audited(
    client, session_factory, secrets_seen
) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    assert (await client.get("/api/v1/account")).json()["time_zone"] is None
    r = await client.put("/api/v1/account/time-zone", json={"time_zone": "America/Chicago"})
    assert r.status_code == 200, r.text
    assert r.json()["time_zone"] == "America/Chicago"
    assert (await client.get("/api/v1/account")).json()["time_zone"] == "America/Chicago"
    assert (await client.get("/api/v1/auth/session")).json()["user"]["time_zone"] == "America/Chicago"
    assert "account.time_zone_update" in await audit_actions(session_factory)
    # Back to following the device (null or blank).
    r = await client.put("/api/v1/account/time-zone", json={"time_zone": ""})
    assert r.status_code == 200 and r.json()["time_zone"] is None


async def test_an_unknown_time_zone_is_named_and_nothing_changes(
    client, session_factory, secrets_seen
) -> None:
    await signed_in_patient(client, session_factory, secrets_seen)
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "x" * 65):
        r = await client.put("/api/v1/account/time-zone", json={"time_zone": bad})
        assert r.status_code == 422, (bad, r.text)
        assert "time_zone" in field_errors(r)
    r = await client.put("/api/v1/account/time-zone", json={"zone": "America/Chicago"})
    assert r.status_code == 422
    assert (await client.get("/api/v1/account")).json()["time_zone"] is None
