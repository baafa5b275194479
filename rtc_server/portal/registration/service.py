"""Patient registration against the record on file and activation (the staff
identity-verification queue is in ``verification``).

What ``register`` guarantees:

- Its reply never tells whether a record matched: every outcome returns the same
  value, both secrets are hashed before anything is looked up, and mail goes out
  after the response (see ``notify.mail``). Only input rules (422) and throttles
  that apply whatever was found (429) can differ, and they depend on the input only.
- A record with an email on file: the entered email must equal it; the
  activation link goes to that address only. A record with no email on file,
  or no zip on file (see ``matching``): the account waits for a person on staff
  to confirm the patient's identity; approval mails the link to the entered email.
- A record with an account (active, or pending and still live) is never taken
  over. A pending account whose activation link has lapsed ("stale") is removed
  when its record or its username is registered again, so an abandoned sign-up
  blocks neither. One waiting for staff is not stale: staff reject it to free it.
- A rejected registration keeps its row for the record of the decision; its user
  is disabled, detached from the record and loses its username and secrets.

Every outcome is audited as ``registration.submit``; the resource names the
reason for failures (``registration:no_match`` ...) and carries no personal data.
Nobody is signed in, so these rows have no actor: an account created here is
the ``resource`` (``user:<id>``), never the actor. A 429 is audited with
outcome ``denied``. Limits are counted before the work they guard, atomically
(see ``auth.throttle``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel
from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import emailed_tokens, throttle
from rtc_server.auth.accounts import normalize_email, normalize_username, username_problems
from rtc_server.auth.models import (
    AccountToken,
    Registration,
    RegistrationStatus,
    Role,
    TokenPurpose,
    User,
    UserStatus,
)
from rtc_server.auth.password_policy import password_problems
from rtc_server.auth.passwords import hash_secret, normalize_answer
from rtc_server.config import PRIVACY_VERSION, TERMS_VERSION, Settings
from rtc_server.context import RequestMeta
from rtc_server.db import utcnow
from rtc_server.errors import Gone, InvalidInput, NotFound, RateLimited
from rtc_server.notify.mail import Mail, link
from rtc_server.portal.registration import mail
from rtc_server.portal.registration.matching import ZIP_PATTERN, MatchKind, find_record
from rtc_server.records.models import Patient
from rtc_server.records.names import normalize_name

CHECK_EMAIL_MESSAGE = "If the details match our records, we've sent the next steps to your email."

REGISTER_PER_IP = (10, 3600)
REGISTER_PER_PERSON = (5, 86400)  # same name + birth date, matched or not: may answer 429
REGISTER_PER_RECORD = (3, 86400)  # matched record: silent, the reply must not change
RESEND_PER_IP = (10, 3600)
RESEND_PER_EMAIL = (3, 3600)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EARLIEST_BIRTH = date(1900, 1, 1)
NAME_MAX = 100
QUESTION_MAX = 200
ANSWER_MIN, ANSWER_MAX = 3, 200


class RegisterForm(BaseModel):
    first_name: str
    last_name: str
    birth_date: str
    zip: str
    email: str
    username: str
    password: str
    security_question: str
    security_answer: str
    accept_terms: bool
    accept_privacy: bool


@dataclass(frozen=True)
class CleanForm:
    first_name: str
    last_name: str
    birth_date: date
    zip: str
    email: str
    username: str
    password: str
    security_question: str
    security_answer: str


# --- input rules -----------------------------------------------------------

def same_email(a: str | None, b: str | None) -> bool:
    return bool(a and b) and a.strip().casefold() == b.strip().casefold()  # type: ignore[union-attr]


def _name_problems(field: str, label: str, value: str) -> list[tuple[str, str]]:
    if not value.strip():
        return [(field, f"Enter your {label} as it appears in your record.")]
    if len(value.strip()) > NAME_MAX:
        return [(field, f"Use at most {NAME_MAX} characters.")]
    return []


def _birth_date(value: str) -> tuple[date | None, str | None]:
    value = value.strip()
    if not _DATE.match(value):
        return None, "Enter your date of birth as YYYY-MM-DD."
    try:
        born = date.fromisoformat(value)
    except ValueError:
        return None, "That date does not exist; check the day and month."
    if born >= utcnow().date():
        return None, "Your date of birth must be in the past."
    if born < _EARLIEST_BIRTH:
        return None, "Check the year of your date of birth."
    return born, None


def check_form(form: RegisterForm) -> CleanForm:
    """Every rule the form breaks, each on its field, in one InvalidInput."""
    problems: list[tuple[str, str]] = []
    problems += _name_problems("first_name", "first name", form.first_name)
    problems += _name_problems("last_name", "last name", form.last_name)
    born, date_problem = _birth_date(form.birth_date)
    if date_problem:
        problems.append(("birth_date", date_problem))
    zip_code = form.zip.strip()
    if not ZIP_PATTERN.match(zip_code):
        problems.append(("zip", "Enter a 5-digit zip code, or ZIP+4 such as 12345-6789."))
    email = normalize_email(form.email)
    if email is None:
        problems.append(("email", "Enter a valid email address, such as name@example.com."))
    username = form.username.strip()
    problems += [("username", m) for m in username_problems(username)]
    problems += [("password", m) for m in password_problems(form.password, username)]
    question = form.security_question.strip()
    if not question:
        problems.append(("security_question", "Choose or write a security question."))
    elif len(question) > QUESTION_MAX:
        problems.append(("security_question", f"Use at most {QUESTION_MAX} characters."))
    answer = normalize_answer(form.security_answer)
    if len(answer) < ANSWER_MIN:
        problems.append(("security_answer", f"Use at least {ANSWER_MIN} characters."))
    elif len(answer) > ANSWER_MAX:
        problems.append(("security_answer", f"Use at most {ANSWER_MAX} characters."))
    elif answer == normalize_answer(form.password):
        problems.append(("security_answer", "Your answer must not be your password."))
    if not form.accept_terms:
        problems.append(("accept_terms", "You must accept the Terms and Conditions of Use to register."))
    if not form.accept_privacy:
        problems.append(("accept_privacy", "You must accept the Privacy Policy to register."))
    if problems:
        raise InvalidInput.many(problems)
    assert born is not None and email is not None
    return CleanForm(
        first_name=form.first_name.strip(), last_name=form.last_name.strip(), birth_date=born,
        zip=zip_code, email=email, username=username, password=form.password,
        security_question=question, security_answer=form.security_answer,
    )


# --- stale pending accounts -------------------------------------------------

async def _is_stale(db: AsyncSession, user: User) -> bool:
    """A pending account whose activation can no longer happen without a new sign-up."""
    if user.status != UserStatus.pending:
        return False
    reg = (await db.exec(select(Registration).where(Registration.user_id == user.id))).first()
    if reg is not None and reg.status == RegistrationStatus.awaiting_verification:
        return False
    live = (
        await db.exec(
            select(AccountToken.id).where(
                AccountToken.user_id == user.id,
                AccountToken.purpose == TokenPurpose.activation,
                col(AccountToken.used_at).is_(None),
                col(AccountToken.expires_at) > utcnow(),
            )
        )
    ).first()
    return live is None


async def _remove_if_stale(db: AsyncSession, user: User | None) -> bool:
    if user is None or not await _is_stale(db, user):
        return False
    await db.exec(delete(User).where(col(User.id) == user.id))  # type: ignore[call-overload]
    await db.flush()
    return True


async def _user_by_username(db: AsyncSession, username: str) -> User | None:
    return (
        await db.exec(select(User).where(User.username_norm == normalize_username(username)))
    ).first()


# --- registration -----------------------------------------------------------

async def register(
    db: AsyncSession, *, form: RegisterForm, meta: RequestMeta, settings: Settings
) -> list[Mail]:
    """Take a sign-up; returns the mail to send after replying. The caller replies
    202 ``CHECK_EMAIL_MESSAGE`` whatever happened here (short of 422/429)."""
    clean = check_form(form)
    secret = settings.secret
    ip = meta.ip or "unknown"
    await _limit(db, "registration.submit", throttle.key_for("register:ip", ip, secret),
                 REGISTER_PER_IP, meta)
    person = "|".join((normalize_name(clean.first_name), normalize_name(clean.last_name),
                       clean.birth_date.isoformat()))
    await _limit(db, "registration.submit", throttle.key_for("register:person", person, secret),
                 REGISTER_PER_PERSON, meta)
    # Both hashes, always: a miss costs as much time as a match.
    password_hash = await hash_secret(clean.password)
    answer_hash = await hash_secret(normalize_answer(clean.security_answer))

    holder = await _user_by_username(db, clean.username)
    if holder is not None and not await _remove_if_stale(db, holder):
        raise InvalidInput("username", "That username is taken; choose another.")
    await db.commit()

    async def outcome(result: str, reason: str, patient_id: int | None = None) -> None:
        await audit.record(db, action="registration.submit", outcome=result, patient_id=patient_id,
                           resource=f"registration:{reason}", request_id=meta.request_id, ip=meta.ip)
        await db.commit()

    match = await find_record(db, first_name=clean.first_name, last_name=clean.last_name,
                              birth_date=clean.birth_date, zip_code=clean.zip)
    if match is None:
        await outcome("failure", "no_match")
        return []
    patient = match.patient
    assert patient.id is not None
    patient_id = patient.id
    await db.commit()  # end the read transaction before counting on another connection
    try:
        await throttle.hit(throttle.engine_of(db), f"register:record:{patient_id}",
                           limit=REGISTER_PER_RECORD[0], window_seconds=REGISTER_PER_RECORD[1])
    except RateLimited:
        await outcome("failure", "throttled", patient_id)
        return []

    existing = (await db.exec(select(User).where(User.patient_id == patient_id))).first()
    if existing is not None and not await _remove_if_stale(db, existing):
        await outcome("failure", "has_account", patient_id)
        if existing.status == UserStatus.active and existing.email:
            return [mail.registration_attempt(to=existing.email, name=patient.given_name,
                                              clinic=settings.clinic_name)]
        return []

    if patient.email and not same_email(patient.email, clean.email):
        await outcome("failure", "email_mismatch", patient_id)
        return [mail.registration_attempt(to=patient.email, name=patient.given_name,
                                          clinic=settings.clinic_name)]

    verify = match.kind == MatchKind.needs_verification or not patient.email
    now = utcnow()
    user = User(
        username=clean.username, username_norm=normalize_username(clean.username),
        password_hash=password_hash, role=Role.patient, status=UserStatus.pending,
        patient_id=patient_id, display_name=patient.display_name,
        email=None if verify else patient.email,
        # Contact details start as the clinic has them on file; the patient
        # can change them in Account Settings.
        phone=patient.phone, address_line=patient.address_line, city=patient.city,
        state=patient.state, zip=patient.zip,
        security_question=clean.security_question, security_answer_hash=answer_hash,
        terms_version=TERMS_VERSION, privacy_version=PRIVACY_VERSION, terms_accepted_at=now,
        created_at=now, password_changed_at=now,
    )
    db.add(user)
    try:
        await db.flush()
    except IntegrityError:
        # Another sign-up won the race for this username or this record.
        await db.rollback()
        if await _user_by_username(db, clean.username) is not None:
            raise InvalidInput("username", "That username is taken; choose another.") from None
        await outcome("failure", "has_account", patient_id)
        return []
    assert user.id is not None
    reg = Registration(
        user_id=user.id, patient_id=patient_id, created_at=now,
        status=RegistrationStatus.awaiting_verification if verify else RegistrationStatus.awaiting_email,
        entered={
            "first_name": clean.first_name, "last_name": clean.last_name,
            "birth_date": clean.birth_date.isoformat(), "zip": clean.zip, "email": clean.email,
        },
    )
    db.add(reg)
    mails: list[Mail] = []
    user_id = user.id
    try:
        await db.flush()
        if not verify:
            assert patient.email is not None
            token = await emailed_tokens.issue(db, user_id=user_id,
                                               purpose=TokenPurpose.activation, email=patient.email)
            mails.append(mail.activation(
                to=patient.email, name=patient.given_name, clinic=settings.clinic_name,
                url=link(settings.base_url, "activate.html", token),
            ))
        await audit.record(db, action="registration.submit", outcome="success",
                           patient_id=patient_id, resource=f"user:{user_id}",
                           request_id=meta.request_id, ip=meta.ip)
        await db.commit()
    except IntegrityError:
        # A parallel sign-up or a staff decision changed these rows under us:
        # nothing of this one is kept, and the reply stays the same 202.
        await db.rollback()
        await outcome("failure", "conflict", patient_id)
        return []
    return mails


async def _limit(
    db: AsyncSession, action: str, key: str, limit: tuple[int, int], meta: RequestMeta
) -> None:
    """Count against a limit that may answer 429 (the same whatever was found);
    a refusal is audited. Call before the session has written anything."""
    got = await throttle.count(throttle.engine_of(db), key, window_seconds=limit[1])
    if got.count > limit[0]:
        await audit.record(db, action=action, outcome="denied", resource="registration:rate_limited",
                           request_id=meta.request_id, ip=meta.ip)
        await db.commit()
        raise RateLimited(retry_after=got.retry_after)


# --- activation -------------------------------------------------------------

async def activate(db: AsyncSession, *, token: str, meta: RequestMeta) -> None:
    """Use an activation link: the pending account becomes active. Single use;
    raises NotFound(token_invalid) or Gone(token_expired/token_used)."""
    try:
        row = await emailed_tokens.consume(db, token, TokenPurpose.activation)
        user = await db.get(User, row.user_id)
        if user is None or user.status != UserStatus.pending:
            raise NotFound("This link is not valid.", code="token_invalid")
    except (NotFound, Gone) as exc:
        await db.rollback()
        await audit.record(db, action="account.activate", outcome="failure",
                           resource=f"token:{exc.code}", request_id=meta.request_id, ip=meta.ip)
        await db.commit()
        raise
    now = utcnow()
    user.status, user.activated_at = UserStatus.active, now
    if row.email:
        user.email = row.email
    db.add(user)
    reg = (await db.exec(select(Registration).where(Registration.user_id == user.id))).first()
    if reg is not None:
        reg.status = RegistrationStatus.activated
        db.add(reg)
    await audit.record(db, action="account.activate", outcome="success", actor_id=user.id,
                       actor_role=Role.patient, patient_id=user.patient_id,
                       resource=f"user:{user.id}", request_id=meta.request_id, ip=meta.ip)
    await db.commit()


async def resend_activation(
    db: AsyncSession, *, email: str, meta: RequestMeta, settings: Settings
) -> list[Mail]:
    """New links for pending accounts at ``email`` that may activate (link sent
    to the record's address, or staff approved). Silent otherwise."""
    secret = settings.secret
    await _limit(db, "account.activation_resend",
                 throttle.key_for("resend:ip", meta.ip or "unknown", secret), RESEND_PER_IP, meta)
    address = normalize_email(email)
    if address is None:
        return []
    await _limit(db, "account.activation_resend",
                 throttle.key_for("resend:email", address.lower(), secret), RESEND_PER_EMAIL, meta)
    rows = (
        await db.exec(
            select(User, Registration)
            .join(Registration, col(Registration.user_id) == col(User.id))
            .where(
                func.lower(User.email) == address.lower(),
                User.status == UserStatus.pending,
                col(Registration.status).in_(
                    [RegistrationStatus.awaiting_email, RegistrationStatus.approved]
                ),
            )
            .limit(5)
        )
    ).all()
    mails = []
    for user, reg in rows:
        assert user.id is not None and user.email is not None
        token = await emailed_tokens.issue(db, user_id=user.id, purpose=TokenPurpose.activation,
                                           email=user.email)
        patient = await db.get(Patient, reg.patient_id)
        mails.append(mail.activation(
            to=user.email, name=patient.given_name if patient else None,
            clinic=settings.clinic_name, url=link(settings.base_url, "activate.html", token),
        ))
        await audit.record(db, action="account.activation_resend", outcome="success",
                           patient_id=user.patient_id, resource=f"user:{user.id}",
                           request_id=meta.request_id, ip=meta.ip)
    await db.commit()
    return mails
