"""Activation: the emailed single-use link turns a pending account into an
active one, and (for sign-ups since usernames moved here) is where the owner
chooses a username, a password and a security question.

Guarantees:

- Only the holder of a live activation link sees whether a username is free
  (``check``, and the 422 of ``activate``); each link may ask at most
  ``CHECKS_PER_LINK`` times an hour (429 after), so a link is no tool for
  listing accounts. Anyone else learns nothing: without a live link every
  answer is 404 ``token_invalid`` or 410 ``token_expired``/``token_used``.
- A choice that breaks a rule (422) leaves the link unused, so the person
  fixes it and tries again. Of two uses of one link exactly one succeeds.
- Pending accounts made before this change already have a username and a
  password; their link activates them as it always did.
- A pending account whose own link lapsed does not keep a username from
  anyone: it gives way when someone else chooses that name.

Every use, successful or not, is audited as ``account.activate`` (failures name
the reason in ``resource``); the account is the actor of its own activation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import emailed_tokens, throttle
from rtc_server.auth.accounts import normalize_email, normalize_username
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
from rtc_server.auth.password_policy import password_problems
from rtc_server.auth.passwords import hash_secret, normalize_answer
from rtc_server.auth.tokens import token_hash
from rtc_server.config import Settings
from rtc_server.db import utcnow
from rtc_server.errors import Gone, InvalidInput, NotFound, RateLimited
from rtc_server.notify.mail import link
from rtc_server.notify.outbox import queue_mail
from rtc_server.portal.registration import mail
from rtc_server.portal.registration.service import PENDING_USERNAME_PREFIX, remove_if_stale
from rtc_server.records.models import Patient
from rtc_server.rules import answer_problem, clean_question, question_problem, username_problems

CHECKS_PER_LINK = (60, 3600)
RESEND_PER_IP = (10, 3600)
RESEND_PER_EMAIL = (3, 3600)
TAKEN = "That username is taken; choose another."


class Step(enum.StrEnum):
    choose_credentials = "choose_credentials"  # the page asks for username, password, question
    ready = "ready"  # an older sign-up that has them: the link alone activates


@dataclass(frozen=True)
class Start:
    step: Step
    first_name: str | None


class Credentials(BaseModel):
    """What the owner chooses on the activation page (all four, for new sign-ups)."""

    model_config = ConfigDict(extra="ignore")

    username: str | None = None
    password: str | None = None
    security_question: str | None = None
    security_answer: str | None = None


@dataclass(frozen=True)
class Check:
    username_available: bool | None
    problems: list[tuple[str, str]]


def needs_credentials(user: User) -> bool:
    return user.username_norm.startswith(PENDING_USERNAME_PREFIX)


# --- rules (``rtc_server.rules``: the same as in Account Settings) ----------

def _credential_problems(c: Credentials) -> list[tuple[str, str]]:
    username = (c.username or "").strip()
    password = c.password or ""
    problems: list[tuple[str, str]] = []
    if not username:
        problems.append(("username", "Choose a username."))
    else:
        problems += [("username", m) for m in username_problems(username)]
    if not password:
        problems.append(("password", "Choose a password."))
    else:
        problems += [("password", m) for m in password_problems(password, username or None)]
    if msg := question_problem(c.security_question or ""):
        problems.append(("security_question", msg))
    if msg := answer_problem(c.security_answer or "", password=password or None):
        problems.append(("security_answer", msg))
    return problems


# --- the link ----------------------------------------------------------------

async def _pending_user(db: AsyncSession, token: str) -> tuple[AccountToken, User]:
    """The live link's row and its pending account (NotFound/Gone otherwise)."""
    row = await emailed_tokens.peek(db, token, TokenPurpose.activation)
    user = await db.get(User, row.user_id)
    if user is None or user.status != UserStatus.pending:
        raise NotFound("This link is not valid.", code="token_invalid")
    return row, user


async def _registration_of(db: AsyncSession, user: User) -> Registration | None:
    return (await db.exec(select(Registration).where(Registration.user_id == user.id))).first()


async def start(db: AsyncSession, *, token: str) -> Start:
    """What the activation page should ask for, without using the link."""
    _row, user = await _pending_user(db, token)
    reg = await _registration_of(db, user)
    first = str(reg.entered.get("first_name") or "") if reg is not None else ""
    return Start(Step.choose_credentials if needs_credentials(user) else Step.ready, first or None)


async def _count_use(db: AsyncSession, token: str, meta: RequestMeta, settings: Settings) -> None:
    """Count one look at usernames through this link (429 past the limit, audited).
    Ends the session's read first: counting writes on a connection of its own."""
    await db.rollback()
    got = await throttle.count(
        throttle.engine_of(db), throttle.key_for("activate:check", token_hash(token), settings.secret),
        window_seconds=CHECKS_PER_LINK[1])
    if got.count > CHECKS_PER_LINK[0]:
        await audit.record(db, action="account.activate", outcome="denied",
                           resource="token:rate_limited", request_id=meta.request_id, ip=meta.ip)
        await db.commit()
        raise RateLimited(retry_after=got.retry_after)


async def _holder(db: AsyncSession, username: str, user_id: int | None) -> User | None:
    """Another account holding ``username``, unless it is a lapsed pending sign-up
    (which gives the name up to whoever wants it: it is removed, the caller commits)."""
    holder = (
        await db.exec(select(User).where(User.username_norm == normalize_username(username)))
    ).first()
    if holder is None or holder.id == user_id or await remove_if_stale(db, holder):
        return None
    return holder


async def check(
    db: AsyncSession, *, token: str, choice: Credentials, meta: RequestMeta, settings: Settings,
) -> Check:
    """Live feedback for the activation form: the rules the username and password
    break, and whether the username is free. Needs a live link; counted per link.
    Changes nothing (a lapsed holder is only removed when the name is taken)."""
    await _pending_user(db, token)
    await _count_use(db, token, meta, settings)
    _row, user = await _pending_user(db, token)
    username = (choice.username or "").strip()
    problems: list[tuple[str, str]] = []
    available: bool | None = None
    if username:
        problems += [("username", m) for m in username_problems(username)]
        if not problems:
            available = await _holder(db, username, user.id) is None
            await db.rollback()
            if not available:
                problems.append(("username", TAKEN))
    if choice.password:
        problems += [("password", m) for m in password_problems(choice.password, username or None)]
    return Check(available, problems)


async def activate(
    db: AsyncSession, *, token: str, choice: Credentials, meta: RequestMeta, settings: Settings,
) -> str:
    """Use an activation link: the pending account becomes active, with the
    username, password and question chosen here when it has none yet. Returns
    the username. Raises InvalidInput (the link stays usable), NotFound
    (token_invalid) or Gone (token_expired/token_used)."""
    try:
        _row, user = await _pending_user(db, token)
    except (NotFound, Gone) as exc:
        await _audit_failure(db, exc.code, meta)
        raise
    fresh = needs_credentials(user)
    username = password_hash = answer_hash = ""
    if fresh:
        await _count_use(db, token, meta, settings)
        problems = _credential_problems(choice)
        if problems:
            raise InvalidInput.many(problems)
        username = (choice.username or "").strip()
        password_hash = await hash_secret(choice.password or "")
        answer_hash = await hash_secret(normalize_answer(choice.security_answer or ""))
    try:
        row = await emailed_tokens.consume(db, token, TokenPurpose.activation)
        found = await db.get(User, row.user_id)
        if found is None or found.status != UserStatus.pending:
            raise NotFound("This link is not valid.", code="token_invalid")
    except (NotFound, Gone) as exc:
        await db.rollback()
        await _audit_failure(db, exc.code, meta)
        raise
    user, now = found, utcnow()
    if fresh:
        if await _holder(db, username, user.id) is not None:
            await db.rollback()
            raise InvalidInput("username", TAKEN)
        user.username, user.username_norm = username, normalize_username(username)
        user.password_hash, user.password_changed_at = password_hash, now
        user.security_question = clean_question(choice.security_question or "")
        user.security_answer_hash = answer_hash
    user.status, user.activated_at = UserStatus.active, now
    if row.email:
        user.email = row.email
    db.add(user)
    reg = await _registration_of(db, user)
    if reg is not None:
        reg.status = RegistrationStatus.activated
        db.add(reg)
    await audit.record(db, action="account.activate", outcome="success", actor_id=user.id,
                       actor_role=Role.patient, patient_id=user.patient_id,
                       resource=f"user:{user.id}", request_id=meta.request_id, ip=meta.ip)
    name = user.username
    try:
        await db.commit()
    except IntegrityError:
        # Someone took the name between the look and the write; the link stays unused.
        await db.rollback()
        raise InvalidInput("username", TAKEN) from None
    return name


async def _audit_failure(db: AsyncSession, code: str, meta: RequestMeta) -> None:
    await audit.record(db, action="account.activate", outcome="failure",
                       resource=f"token:{code}", request_id=meta.request_id, ip=meta.ip)
    await db.commit()


# --- a new link ----------------------------------------------------------------

async def resend(db: AsyncSession, *, email: str, meta: RequestMeta, settings: Settings) -> None:
    """New links (queued in the outbox) for pending accounts at ``email`` that may
    activate (link sent to the record's address, or staff approved). Silent otherwise."""
    secret = settings.secret
    await _limit(db, throttle.key_for("resend:ip", meta.ip or "unknown", secret), RESEND_PER_IP, meta)
    address = normalize_email(email)
    if address is None:
        return
    await _limit(db, throttle.key_for("resend:email", address.lower(), secret), RESEND_PER_EMAIL, meta)
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
    for user, reg in rows:
        assert user.id is not None and user.email is not None
        token = await emailed_tokens.issue(db, user_id=user.id, purpose=TokenPurpose.activation,
                                           email=user.email)
        patient = await db.get(Patient, reg.patient_id)
        queue_mail(db, mail.activation(
            to=user.email, name=patient.given_name if patient else None,
            clinic=settings.clinic_name, url=link(settings.base_url, "activate.html", token),
        ))
        await audit.record(db, action="account.activation_resend", outcome="success",
                           patient_id=user.patient_id, resource=f"user:{user.id}",
                           request_id=meta.request_id, ip=meta.ip)
    await db.commit()


async def _limit(db: AsyncSession, key: str, limit: tuple[int, int], meta: RequestMeta) -> None:
    got = await throttle.count(throttle.engine_of(db), key, window_seconds=limit[1])
    if got.count > limit[0]:
        await audit.record(db, action="account.activation_resend", outcome="denied",
                           resource="registration:rate_limited", request_id=meta.request_id,
                           ip=meta.ip)
        await db.commit()
        raise RateLimited(retry_after=got.retry_after)
