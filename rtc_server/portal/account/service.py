"""Account settings: reading them, username, password, security question,
notification preferences and sessions (contact details and the email change
are in ``email_change``, two-factor in ``mfa_service``).

Every change that matters for security needs the current password (a wrong
one counts toward the sign-in lockout like a failed log-in), is audited, and
is announced by email to the account's address, so a hijacked session cannot
quietly take an account over. Mail is queued in the outbox in the same
transaction (``notify.outbox``); ending sessions closes their sockets at once
(``auth.sessions``).
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import emailed_tokens, login, mfa
from rtc_server.auth.accounts import normalize_username, username_problems, username_taken
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import AuthSession, Role, TokenPurpose, User
from rtc_server.auth.password_policy import password_problems
from rtc_server.auth.passwords import hash_secret, normalize_answer, verify_secret
from rtc_server.auth.sessions import end_session, end_user_sessions, is_live
from rtc_server.config import Settings
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import InvalidInput, NotFound, Unauthorized
from rtc_server.portal.account.notices import queue_security_notice
from rtc_server.rules import (
    answer_problem,
    blank_to_none,
    check_zone,
    clean_question,
    question_problem,
    zip_problem,
)

NOTIFICATION_KINDS = ("appointment_reminders", "new_messages", "lab_results", "refill_updates")
DEFAULT_CHANNELS = {"email": True, "sms": False}
_PHONE = re.compile(r"^\+?[0-9 ().-]{7,32}$")


# --- shapes ------------------------------------------------------------------

class Address(BaseModel):
    line: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=50)
    zip: str | None = Field(default=None, max_length=10)

    _blank = field_validator("line", "city", "state", "zip", mode="before")(blank_to_none)

    @field_validator("zip")
    @classmethod
    def _zip(cls, value: str | None) -> str | None:
        problem = zip_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


class ContactChange(BaseModel):
    """Fields present in the body change; absent ones stay."""

    email: EmailStr | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    address: Address | None = None
    #: Needed only when ``email`` differs from the current address.
    current_password: str | None = Field(default=None, max_length=1024)

    _blank = field_validator("email", "phone", mode="before")(blank_to_none)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and (not _PHONE.match(value) or sum(c.isdigit() for c in value) < 7):
            raise ValueError("Enter a phone number with at least 7 digits, such as +1 555 010 0123.")
        return value


class Channels(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: StrictBool
    sms: StrictBool


class NotificationPrefs(BaseModel):
    """Kinds left out keep their current setting; an unknown kind is an error."""

    model_config = ConfigDict(extra="forbid")
    appointment_reminders: Channels | None = None
    new_messages: Channels | None = None
    lab_results: Channels | None = None
    refill_updates: Channels | None = None


class NotificationsOut(BaseModel):
    appointment_reminders: Channels
    new_messages: Channels
    lab_results: Channels
    refill_updates: Channels


class TimeZoneChoice(BaseModel):
    """The zone times are shown in (an IANA name); null: the device's own."""

    model_config = ConfigDict(extra="forbid")
    time_zone: str | None = Field(max_length=64)

    _blank = field_validator("time_zone", mode="before")(blank_to_none)
    _known = field_validator("time_zone")(lambda v: v if v is None else check_zone(v))


class AccountOut(BaseModel):
    username: str
    email: str | None
    pending_email: str | None
    phone: str | None
    address: Address
    security_question: str | None
    notifications: NotificationsOut
    mfa_enabled: bool
    mfa_required: bool
    role: Role
    time_zone: str | None


class SessionRow(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


# --- helpers -----------------------------------------------------------------

async def load_user(db: AsyncSession, actor: Actor) -> User:
    user = await db.get(User, actor.user_id)
    if user is None:
        raise Unauthorized()
    return user


def notifications_of(user: User) -> dict[str, dict[str, bool]]:
    stored = user.notification_prefs or {}
    out: dict[str, dict[str, bool]] = {}
    for kind in NOTIFICATION_KINDS:
        value = stored.get(kind) if isinstance(stored.get(kind), dict) else {}
        out[kind] = {ch: bool(value.get(ch, default)) for ch, default in DEFAULT_CHANNELS.items()}
    return out


def account_view(user: User) -> AccountOut:
    return AccountOut(
        username=user.username, email=user.email, pending_email=user.pending_email,
        phone=user.phone,
        address=Address(line=user.address_line, city=user.city, state=user.state, zip=user.zip),
        security_question=user.security_question,
        notifications=NotificationsOut.model_validate(notifications_of(user)),
        mfa_enabled=user.mfa_enabled, mfa_required=mfa.mfa_required_for(user.role), role=user.role,
        time_zone=user.time_zone,
    )


async def record_action(db: AsyncSession, actor: Actor, action: str, outcome: str = "success") -> None:
    await audit.record(
        db, action=action, outcome=outcome, actor_id=actor.user_id, actor_role=actor.role,
        resource=f"user:{actor.user_id}", request_id=actor.meta.request_id, ip=actor.meta.ip,
    )


async def require_password(
    db: AsyncSession, actor: Actor, user: User, password: str | None, settings: Settings
) -> None:
    """A missing current password is a 422 on ``current_password``; a wrong
    one is too, and counts toward the sign-in lockout (committing the count),
    so a stolen session can't guess it freely. Call it before changing
    anything in ``db``."""
    if not password:
        raise InvalidInput("current_password", "Enter your current password.")
    if not await verify_secret(user.password_hash, password):
        await login.refuse_signed_in(db, user=user, meta=actor.meta, settings=settings,
                                     action="account.reauth_failure")
        raise InvalidInput("current_password", "Your current password is not right.")


# --- reading -----------------------------------------------------------------

async def get_account(db: AsyncSession, actor: Actor) -> AccountOut:
    return account_view(await load_user(db, actor))


# --- username, password, security question ----------------------------------------

async def change_username(
    db: AsyncSession, actor: Actor, *, username: str, current_password: str, settings: Settings,
) -> AccountOut:
    """A new username (needs the current password); a notice goes to the account's address."""
    user = await load_user(db, actor)
    await require_password(db, actor, user, current_password, settings)
    problems = username_problems(username)
    if problems:
        raise InvalidInput.many(("username", m) for m in problems)
    if await username_taken(db, username, except_user=user.id):
        raise InvalidInput("username", "That username is taken; choose another.")
    if normalize_username(username) in current_password.casefold():
        raise InvalidInput(
            "username", "Your password contains this username; choose another username "
                        "or change your password first."
        )
    old = user.username
    user.username = username.strip()
    user.username_norm = normalize_username(username)
    db.add(user)
    await record_action(db, actor, "account.username_change")
    if old != user.username:
        queue_security_notice(
            db, user=user, settings=settings, kind="username_changed",
            subject="your username was changed",
            what="The username of your patient portal account was changed.",
        )
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise InvalidInput("username", "That username is taken; choose another.") from None
    return account_view(user)


async def change_password(
    db: AsyncSession, actor: Actor, *, current_password: str, new_password: str, settings: Settings,
) -> None:
    """Set a new password; every other session of the account ends (their
    sockets close at once), and every unused password-reset and email-change
    link stops working (a pending email change is dropped), so nothing issued
    before the change outlives it. A notice goes to the account's address."""
    user = await load_user(db, actor)
    await require_password(db, actor, user, current_password, settings)
    problems = password_problems(new_password, user.username)
    if problems:
        raise InvalidInput.many(("new_password", m) for m in problems)
    if new_password == current_password:
        raise InvalidInput("new_password", "Choose a password different from your current one.")
    user.password_hash = await hash_secret(new_password)
    user.password_changed_at = utcnow()
    user.pending_email = None
    db.add(user)
    await end_user_sessions(db, user.id or 0, keep=actor.session_id)
    await emailed_tokens.revoke(db, user.id or 0, TokenPurpose.password_reset, TokenPurpose.email_change)
    await record_action(db, actor, "password.change")
    queue_security_notice(
        db, user=user, settings=settings, kind="password_changed", subject="your password was changed",
        what="The password of your patient portal account was changed, and any other "
             "signed-in sessions were signed out.",
    )
    await db.commit()


async def set_security_question(
    db: AsyncSession, actor: Actor, *, current_password: str, question: str, answer: str,
    settings: Settings,
) -> AccountOut:
    """A new question and answer (the answer stored hashed; the rules are
    ``rtc_server.rules``'); a notice goes to the account's address."""
    user = await load_user(db, actor)
    await require_password(db, actor, user, current_password, settings)
    fields = []
    if problem := question_problem(question):
        fields.append(("security_question", problem))
    if problem := answer_problem(answer, password=current_password):
        fields.append(("security_answer", problem))
    if fields:
        raise InvalidInput.many(fields)
    user.security_question = clean_question(question)
    user.security_answer_hash = await hash_secret(normalize_answer(answer))
    db.add(user)
    await record_action(db, actor, "account.security_question_change")
    queue_security_notice(
        db, user=user, settings=settings, kind="security_question_changed",
        subject="your security question was changed",
        what="The security question of your patient portal account was changed.",
    )
    await db.commit()
    return account_view(user)


async def set_notifications(db: AsyncSession, actor: Actor, prefs: NotificationPrefs) -> AccountOut:
    user = await load_user(db, actor)
    current = notifications_of(user)
    fields = []
    for kind in NOTIFICATION_KINDS:
        chosen: Channels | None = getattr(prefs, kind)
        if chosen is None:
            continue
        if chosen.sms and not user.phone:
            fields.append((f"{kind}.sms", "Add a phone number to get text messages."))
        current[kind] = chosen.model_dump()
    if fields:
        raise InvalidInput.many(fields)
    user.notification_prefs = current
    db.add(user)
    await record_action(db, actor, "account.notifications_update")
    await db.commit()
    return account_view(user)


async def set_time_zone(db: AsyncSession, actor: Actor, choice: TimeZoneChoice) -> AccountOut:
    """Times on the pages and in reminders follow the chosen zone (None: the device's on
    pages, the clinic's in reminders)."""
    user = await load_user(db, actor)
    user.time_zone = choice.time_zone
    db.add(user)
    await record_action(db, actor, "account.time_zone_update")
    await db.commit()
    return account_view(user)


# --- sessions ----------------------------------------------------------------

async def list_sessions(db: AsyncSession, actor: Actor, settings: Settings) -> list[SessionRow]:
    rows = (
        await db.exec(
            select(AuthSession)
            .where(AuthSession.user_id == actor.user_id, col(AuthSession.ended_at).is_(None))
            .order_by(col(AuthSession.created_at).desc())
        )
    ).all()
    now = utcnow()
    return [
        SessionRow(
            id=s.public_id, created_at=as_utc(s.created_at) or now,
            last_seen_at=as_utc(s.last_seen_at) or now, user_agent=s.user_agent, ip=s.ip,
            current=s.id == actor.session_id,
        )
        for s in rows if is_live(s, settings, now)
    ]


async def end_own_session(db: AsyncSession, actor: Actor, public_id: str) -> None:
    """End one of the caller's sessions (its sockets close at once). Another
    user's session looks absent (404), and that refusal is audited as ``denied``."""
    sess = (
        await db.exec(
            select(AuthSession).where(
                AuthSession.public_id == public_id, col(AuthSession.ended_at).is_(None),
            )
        )
    ).first()
    if sess is None:
        raise NotFound("No such session.")
    actor.require(sess.user_id == actor.user_id, action="session.end",
                  resource=f"session:{public_id}", error=NotFound("No such session."))
    await end_session(db, sess.id)
    await audit.record(
        db, action="session.end", actor_id=actor.user_id, actor_role=actor.role,
        resource=f"session:{public_id}", request_id=actor.meta.request_id, ip=actor.meta.ip,
    )
    await db.commit()


