"""Patient registration against the record on file (activation is in
``activation``, the staff identity-verification queue in ``verification``).

Sign-up has two steps. Here, the person says who they are (name, birth date,
ZIP, email) and accepts the terms; nothing else. Only after the record has
confirmed them (the emailed link went to the address on file) or a person at
the clinic has (staff approval mails the link), the activation page asks for
a username, a password and a security question.

Why the username is chosen at activation (security review, finding 4): a
username field here had to say "taken" to anybody, which named every
account, staff and admins included. Now this endpoint never looks at a
username; availability is shown only on the activation page, to the holder
of a live single-use link, and is throttled per link. It also means nothing
secret is stored for a sign-up that nobody has confirmed, and a patient who
waits days for staff review chooses the password when they need it, instead
of having to remember one typed days before.

What ``register`` guarantees:

- Its reply never tells whether a record matched: every outcome returns the same
  value under the route's response floor, and mail is queued in the outbox and
  sent by a worker after commit (``notify.outbox``), never on the request path.
  Only input rules (422) and throttles that apply whatever was found (429) can
  differ, and they depend on the input only.
- A record with an email on file: the entered email must equal it; the
  activation link goes to that address only. A record with no email on file,
  or no zip on file (see ``matching``): the account waits for a person on staff
  to confirm the patient's identity; approval mails the link to the entered email.
- A record with an account (active, or pending and still live) is never taken
  over. A pending account whose activation link has lapsed ("stale") is removed
  when its record is registered again, so an abandoned sign-up never blocks it.
  One waiting for staff is not stale: staff reject it to free it.

Who gets mail, and why that is no oracle (staff-review honesty, UX review #2).
Let T be the address typed, R the address on the matched record, A the
address of the record's account:

=====================================  ===============================================
case                                   mail
=====================================  ===============================================
no record matches                      T: "request received" (general)
match, T = R, confirmed by zip         T: activation link
match, T = R, no zip on file (staff)   T: "a person will check, within N business days"
match, R on file, T != R               R: "someone tried"; T: "request received"
match, no R on file (staff review)     T: "request received" (general)
record already has an active account   A: "someone tried"; T: "request received" unless T = A
record has a live pending sign-up      T: "request received"
=====================================  ===============================================

So a mailbox someone can type in always gets exactly one message, and that
message is the general "request received" one unless the mailbox is the one
the clinic has on file for that record (whose owner may learn about their own
record). A stranger typing their own address therefore gets the same single
message whether the details matched a record, matched one that goes to staff,
or matched nothing: mail/no-mail tells nothing. The cost is that a patient
whose record has no email on file cannot be told for certain that a person is
checking: the general message (and the page) says what happens in each case,
with the review time from settings, and tells them to call if they hear
nothing. Nobody is mailed when staff reject (that would confirm the record to
whoever typed the details); the copy says to call the clinic instead.

The general message goes only to an address somebody typed: it names nobody,
carries no typed text, and at most ``RECEIPT_PER_ADDRESS`` of them reach one
address a day (a silent limit, counted for every sign-up whatever matched), so
the form cannot be used to mail-bomb.

Every outcome is audited as ``registration.submit``; the resource names the
reason for failures (``registration:no_match`` ...) and carries no personal data.
Nobody is signed in, so these rows have no actor: an account created here is
the ``resource`` (``user:<id>``), never the actor. A 429 is audited with
outcome ``denied``. Limits are counted before the work they guard, atomically
(see ``auth.throttle``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import emailed_tokens, throttle
from rtc_server.auth.accounts import normalize_email
from rtc_server.auth.actor import RequestMeta
from rtc_server.auth.models import (
    AccountToken,
    Registration,
    RegistrationStatus,
    Role,
    TokenPurpose,
    User,
    UserStatus,
)
from rtc_server.config import PRIVACY_VERSION, TERMS_VERSION, Settings
from rtc_server.db import utcnow
from rtc_server.errors import InvalidInput, RateLimited
from rtc_server.notify.mail import Mail, link
from rtc_server.notify.outbox import queue_mail
from rtc_server.portal.registration import mail
from rtc_server.portal.registration.matching import MatchKind, find_record
from rtc_server.records.names import normalize_name
from rtc_server.rules import zip_problem

REGISTER_PER_IP = (10, 3600)
REGISTER_PER_PERSON = (5, 86400)  # same name + birth date, matched or not: may answer 429
REGISTER_PER_RECORD = (3, 86400)  # matched record: silent, the reply must not change
RECEIPT_PER_ADDRESS = (3, 86400)  # "request received" to one typed address: silent
#: Business days a person at the clinic takes to check a sign-up (when settings say nothing).
DEFAULT_REVIEW_DAYS = 2

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EARLIEST_BIRTH = date(1900, 1, 1)
NAME_MAX = 100
#: Accounts waiting for their owner to choose a username hold this, plus random
#: characters, as ``username_norm`` ('~' is not allowed in usernames).
PENDING_USERNAME_PREFIX = "~pending~"
#: A password hash nothing verifies against, until the owner chooses one.
UNUSABLE_HASH = "!"


class RegisterForm(BaseModel):
    """Who the person is. Fields that older clients sent (``username``,
    ``password``, the security question) are ignored: they are chosen at
    activation now."""

    model_config = ConfigDict(extra="ignore")

    first_name: str
    last_name: str
    birth_date: str
    zip: str
    email: str
    accept_terms: bool
    accept_privacy: bool


@dataclass(frozen=True)
class CleanForm:
    first_name: str
    last_name: str
    birth_date: date
    zip: str
    email: str


def review_days(settings: Settings) -> int:
    """How many business days a staff check takes, as the clinic configured it."""
    return int(getattr(settings, "verification_review_days", DEFAULT_REVIEW_DAYS))


def check_email_message(settings: Settings) -> str:
    """The one reply every accepted sign-up gets (true in every case)."""
    days = review_days(settings)
    span = "1 business day" if days == 1 else f"{days} business days"
    return (
        "We've sent an email to the address you gave. If we can confirm your details with "
        "your record, it has a link to choose your username and password. If a person at "
        f"the clinic needs to check your details first, that takes up to {span}, and you "
        "will get an email with the link once they have confirmed them."
    )


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
    if born < EARLIEST_BIRTH:
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
    if zip_msg := zip_problem(zip_code):
        problems.append(("zip", zip_msg))
    email = normalize_email(form.email)
    if email is None:
        problems.append(("email", "Enter a valid email address, such as name@example.com."))
    if not form.accept_terms:
        problems.append(("accept_terms", "You must accept the Terms and Conditions of Use to register."))
    if not form.accept_privacy:
        problems.append(("accept_privacy", "You must accept the Privacy Policy to register."))
    if problems:
        raise InvalidInput.many(problems)
    assert born is not None and email is not None
    return CleanForm(
        first_name=form.first_name.strip(), last_name=form.last_name.strip(), birth_date=born,
        zip=zip_code, email=email,
    )


# --- stale pending accounts -------------------------------------------------

async def is_stale(db: AsyncSession, user: User) -> bool:
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


async def remove_if_stale(db: AsyncSession, user: User | None) -> bool:
    if user is None or not await is_stale(db, user):
        return False
    await db.exec(delete(User).where(col(User.id) == user.id))  # type: ignore[call-overload]
    await db.flush()
    return True


# --- registration -----------------------------------------------------------

async def register(
    db: AsyncSession, *, form: RegisterForm, meta: RequestMeta, settings: Settings
) -> None:
    """Take a sign-up; its mail is queued in the outbox (sent after commit). The
    caller replies 202 ``check_email_message`` whatever happened here (short of
    422/429), under the response floor."""
    clean = check_form(form)
    secret = settings.secret
    ip = meta.ip or "unknown"
    await _limit(db, "registration.submit", throttle.key_for("register:ip", ip, secret),
                 REGISTER_PER_IP, meta)
    person = "|".join((normalize_name(clean.first_name), normalize_name(clean.last_name),
                       clean.birth_date.isoformat()))
    await _limit(db, "registration.submit", throttle.key_for("register:person", person, secret),
                 REGISTER_PER_PERSON, meta)
    # Counted for every sign-up, matched or not, so whether the receipt goes
    # out depends on how often this address was typed, never on the records.
    receipts = await throttle.count(
        throttle.engine_of(db), throttle.key_for("register:receipt", clean.email.lower(), secret),
        window_seconds=RECEIPT_PER_ADDRESS[1])
    mailed = await _register_person(db, clean, meta, settings)
    if not any(same_email(to, clean.email) for to in mailed) and \
            receipts.count <= RECEIPT_PER_ADDRESS[0]:
        queue_mail(db, mail.request_received(to=clean.email, clinic=settings.clinic_name,
                                             review_days=review_days(settings)))
        await db.commit()


async def _register_person(
    db: AsyncSession, clean: CleanForm, meta: RequestMeta, settings: Settings
) -> list[str]:
    """The record-dependent part of ``register``: queues (and commits) the mail
    that only the owner of the address on file may see (see the module
    docstring's table); returns the addresses it mailed."""

    async def outcome(result: str, reason: str, patient_id: int | None = None,
                      mails: list[Mail] | None = None) -> list[str]:
        for m in mails or []:
            queue_mail(db, m)
        await audit.record(db, action="registration.submit", outcome=result, patient_id=patient_id,
                           resource=f"registration:{reason}", request_id=meta.request_id, ip=meta.ip)
        await db.commit()
        return [m.to for m in mails or []]

    match = await find_record(db, first_name=clean.first_name, last_name=clean.last_name,
                              birth_date=clean.birth_date, zip_code=clean.zip)
    if match is None:
        return await outcome("failure", "no_match")
    patient = match.patient
    assert patient.id is not None
    patient_id = patient.id
    await db.commit()  # end the read transaction before counting on another connection
    try:
        await throttle.hit(throttle.engine_of(db), f"register:record:{patient_id}",
                           limit=REGISTER_PER_RECORD[0], window_seconds=REGISTER_PER_RECORD[1])
    except RateLimited:
        return await outcome("failure", "throttled", patient_id)

    existing = (await db.exec(select(User).where(User.patient_id == patient_id))).first()
    if existing is not None and not await remove_if_stale(db, existing):
        notice = []
        if existing.status == UserStatus.active and existing.email:
            notice = [mail.registration_attempt(to=existing.email, name=patient.given_name,
                                                clinic=settings.clinic_name)]
        return await outcome("failure", "has_account", patient_id, notice)

    if patient.email and not same_email(patient.email, clean.email):
        return await outcome("failure", "email_mismatch", patient_id, [mail.registration_attempt(
            to=patient.email, name=patient.given_name, clinic=settings.clinic_name)])

    verify = match.kind == MatchKind.needs_verification or not patient.email
    now = utcnow()
    user = User(
        # No username, password or security answer yet: the owner chooses them
        # on the activation page (see the module docstring).
        username="", username_norm=PENDING_USERNAME_PREFIX + secrets.token_hex(12),
        password_hash=UNUSABLE_HASH, role=Role.patient, status=UserStatus.pending,
        patient_id=patient_id, display_name=patient.display_name,
        email=None if verify else patient.email,
        # Contact details start as the clinic has them on file; the patient
        # can change them in Account Settings.
        phone=patient.phone, address_line=patient.address_line, city=patient.city,
        state=patient.state, zip=patient.zip,
        terms_version=TERMS_VERSION, privacy_version=PRIVACY_VERSION, terms_accepted_at=now,
        created_at=now,
    )
    db.add(user)
    mails: list[Mail] = []
    try:
        await db.flush()
        assert user.id is not None
        user_id = user.id
        db.add(Registration(
            user_id=user_id, patient_id=patient_id, created_at=now,
            status=(RegistrationStatus.awaiting_verification if verify
                    else RegistrationStatus.awaiting_email),
            entered={
                "first_name": clean.first_name, "last_name": clean.last_name,
                "birth_date": clean.birth_date.isoformat(), "zip": clean.zip, "email": clean.email,
            },
        ))
        await db.flush()
        if not verify:
            assert patient.email is not None
            token = await emailed_tokens.issue(db, user_id=user_id,
                                               purpose=TokenPurpose.activation, email=patient.email)
            mails.append(mail.activation(
                to=patient.email, name=patient.given_name, clinic=settings.clinic_name,
                url=link(settings.base_url, "activate.html", token),
            ))
        elif patient.email:
            # No zip on file, so a person checks; the address is the record's own.
            mails.append(mail.review_started(to=patient.email, name=patient.given_name,
                                             clinic=settings.clinic_name,
                                             review_days=review_days(settings)))
        for m in mails:
            queue_mail(db, m)
        await audit.record(db, action="registration.submit", outcome="success",
                           patient_id=patient_id, resource=f"user:{user_id}",
                           request_id=meta.request_id, ip=meta.ip)
        await db.commit()
    except IntegrityError:
        # A parallel sign-up or a staff decision changed these rows under us:
        # nothing of this one is kept (its mail neither), and the reply stays the same 202.
        await db.rollback()
        return await outcome("failure", "conflict", patient_id)
    return [m.to for m in mails]


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
