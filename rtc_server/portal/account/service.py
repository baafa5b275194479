"""Account settings: contact details, username, password, security question,
notification preferences, sessions and two-factor set-up.

Every change that matters for security needs the current password (a wrong
one counts toward the sign-in lockout like a failed log-in), is audited, and
is announced by email to the account's address, so a hijacked session cannot
quietly take an account over. A new email address takes effect only when the
link mailed to it is followed.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import emailed_tokens, login, mfa
from rtc_server.auth.accounts import normalize_username, username_problems, username_taken
from rtc_server.auth.current import Actor
from rtc_server.auth.models import AuthSession, Role, SessionStage, TokenPurpose, User
from rtc_server.auth.password_policy import password_problems
from rtc_server.auth.passwords import hash_secret, normalize_answer, verify_secret
from rtc_server.auth.sessions import create_session, end_session, end_user_sessions, is_live
from rtc_server.config import Settings
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized

NOTIFICATION_KINDS = ("appointment_reminders", "new_messages", "lab_results", "refill_updates")
DEFAULT_CHANNELS = {"email": True, "sms": False}
_PHONE = re.compile(r"^\+?[0-9 ().-]{7,32}$")
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")


# --- shapes ------------------------------------------------------------------

def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class Address(BaseModel):
    line: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=50)
    zip: str | None = Field(default=None, max_length=10)

    _blank = field_validator("line", "city", "state", "zip", mode="before")(_blank_to_none)

    @field_validator("zip")
    @classmethod
    def _zip(cls, value: str | None) -> str | None:
        if value is not None and not _ZIP.match(value):
            raise ValueError("Enter a 5-digit ZIP code (or ZIP+4).")
        return value


class ContactChange(BaseModel):
    """Fields present in the body change; absent ones stay."""

    email: EmailStr | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    address: Address | None = None

    _blank = field_validator("email", "phone", mode="before")(_blank_to_none)

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


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class MfaSetupOut(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class MfaConfirmed(BaseModel):
    recovery_codes: list[str]
    #: Set when an enrolment session became a full one: the route sets the cookie.
    new_session_token: str | None = Field(default=None, exclude=True)


# --- helpers -----------------------------------------------------------------

async def _user(db: AsyncSession, actor: Actor) -> User:
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
    )


async def _record(db: AsyncSession, actor: Actor, action: str, outcome: str = "success") -> None:
    await audit.record(
        db, action=action, outcome=outcome, actor_id=actor.user_id, actor_role=actor.role,
        resource=f"user:{actor.user_id}", request_id=actor.meta.request_id, ip=actor.meta.ip,
    )


async def _require_password(
    db: AsyncSession, actor: Actor, user: User, password: str, settings: Settings, mailer: Any
) -> None:
    """A wrong current password is a 422 on ``current_password`` and counts
    toward the sign-in lockout, so a stolen session can't guess it freely."""
    if not await verify_secret(user.password_hash, password):
        failures = await login.record_failure(
            db, norm=user.username_norm, user=user, meta=actor.meta, settings=settings,
            mailer=mailer, action="account.reauth_failure",
        )
        await login.failure_delay(failures)
        raise InvalidInput("current_password", "Your current password is not right.")


async def _notice(mailer: Any, settings: Settings, user: User, subject: str, what: str) -> None:
    await login.mail_quietly(
        mailer, user.email, f"{settings.clinic_name}: {subject}",
        f"Hello {user.display_name or user.username},\n\n{what}\n\n"
        "If this wasn't you, reset your password now and contact the clinic:\n"
        f"{settings.base_url}/forgot-password.html\n\n{settings.clinic_name}\n",
    )


# --- reading -----------------------------------------------------------------

async def get_account(db: AsyncSession, actor: Actor) -> AccountOut:
    return account_view(await _user(db, actor))


# --- contact and email -------------------------------------------------------------

async def update_contact(
    db: AsyncSession, actor: Actor, change: ContactChange, *, settings: Settings, mailer: Any
) -> AccountOut:
    """Phone and address change at once; a new email waits in ``pending_email``
    until the link mailed to it is followed (the old address gets a notice)."""
    user = await _user(db, actor)
    given = change.model_fields_set
    changed: list[str] = []
    if "phone" in given and change.phone != user.phone:
        user.phone = change.phone
        changed.append("phone")
    if "address" in given:
        addr = change.address or Address()
        new = (addr.line, addr.city, addr.state, addr.zip)
        if new != (user.address_line, user.city, user.state, user.zip):
            user.address_line, user.city, user.state, user.zip = new
            changed.append("address")
    token: str | None = None
    new_email: str | None = None
    if "email" in given:
        if change.email is None:
            raise InvalidInput("email", "An email address is required.")
        new_email = str(change.email)
        if user.email and new_email.casefold() == user.email.casefold():
            user.pending_email = None  # changing back cancels a pending change
            new_email = None
        elif user.pending_email is None or new_email.casefold() != user.pending_email.casefold():
            user.pending_email = new_email
            token = await emailed_tokens.issue(
                db, user_id=user.id or 0, purpose=TokenPurpose.email_change, email=new_email
            )
        else:
            new_email = None  # the same pending address again: the link already went out
    db.add(user)
    if changed:
        await _record(db, actor, "account.contact_update")
    if token:
        await _record(db, actor, "account.email_change_request")
    await db.commit()
    if token and new_email:
        await login.mail_quietly(
            mailer, new_email, f"{settings.clinic_name}: confirm your new email address",
            f"Hello {user.display_name or user.username},\n\n"
            "Follow this link to use this address for your patient portal account:\n"
            f"{settings.base_url}/confirm-email.html?token={token}\n\n"
            "The link works once and expires in 48 hours. If you did not ask for this, "
            f"ignore this message.\n\n{settings.clinic_name}\n",
        )
        await _notice(
            mailer, settings, user, "your email address is changing",
            "Someone signed in to your account asked to change its email address. The change "
            "takes effect only when the link sent to the new address is followed.",
        )
    return account_view(user)


async def confirm_email(db: AsyncSession, *, token: str, request_id: str | None, ip: str | None) -> None:
    """Follow an email-change link: the token is the proof, with or without a session."""
    row = await emailed_tokens.consume(db, token, TokenPurpose.email_change)
    user = await db.get(User, row.user_id)
    if user is None or not row.email:
        raise NotFound("This link is not valid.", code="token_invalid")
    user.email = row.email
    if user.pending_email and user.pending_email.casefold() == row.email.casefold():
        user.pending_email = None
    db.add(user)
    await audit.record(
        db, action="account.email_change", actor_id=user.id, actor_role=user.role,
        resource=f"user:{user.id}", request_id=request_id, ip=ip,
    )
    await db.commit()


# --- username, password, security question ----------------------------------------

async def change_username(
    db: AsyncSession, actor: Actor, *, username: str, current_password: str, settings: Settings,
    mailer: Any,
) -> AccountOut:
    user = await _user(db, actor)
    await _require_password(db, actor, user, current_password, settings, mailer)
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
    await _record(db, actor, "account.username_change")
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise InvalidInput("username", "That username is taken; choose another.") from None
    if old != user.username:
        await _notice(mailer, settings, user, "your username was changed",
                      "The username of your patient portal account was changed.")
    return account_view(user)


async def change_password(
    db: AsyncSession, actor: Actor, *, current_password: str, new_password: str,
    settings: Settings, mailer: Any,
) -> None:
    """Set a new password; every other session of the account ends."""
    user = await _user(db, actor)
    await _require_password(db, actor, user, current_password, settings, mailer)
    problems = password_problems(new_password, user.username)
    if problems:
        raise InvalidInput.many(("new_password", m) for m in problems)
    if new_password == current_password:
        raise InvalidInput("new_password", "Choose a password different from your current one.")
    user.password_hash = await hash_secret(new_password)
    user.password_changed_at = utcnow()
    db.add(user)
    await end_user_sessions(db, user.id or 0, keep=actor.session_id)
    await _record(db, actor, "password.change")
    await db.commit()
    await _notice(mailer, settings, user, "your password was changed",
                  "The password of your patient portal account was changed, and any other "
                  "signed-in sessions were signed out.")


async def set_security_question(
    db: AsyncSession, actor: Actor, *, current_password: str, question: str, answer: str,
    settings: Settings, mailer: Any,
) -> AccountOut:
    user = await _user(db, actor)
    await _require_password(db, actor, user, current_password, settings, mailer)
    fields = []
    q = " ".join(question.split())
    if not 5 <= len(q) <= 200:
        fields.append(("security_question", "Write a question of 5 to 200 characters."))
    norm = normalize_answer(answer)
    if not 3 <= len(norm) <= 200:
        fields.append(("security_answer", "Write an answer of 3 to 200 characters."))
    if fields:
        raise InvalidInput.many(fields)
    user.security_question = q
    user.security_answer_hash = await hash_secret(norm)
    db.add(user)
    await _record(db, actor, "account.security_question_change")
    await db.commit()
    await _notice(mailer, settings, user, "your security question was changed",
                  "The security question of your patient portal account was changed.")
    return account_view(user)


async def set_notifications(db: AsyncSession, actor: Actor, prefs: NotificationPrefs) -> AccountOut:
    user = await _user(db, actor)
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
    await _record(db, actor, "account.notifications_update")
    await db.commit()
    return account_view(user)


# --- sessions ----------------------------------------------------------------

async def list_sessions(db: AsyncSession, actor: Actor, settings: Settings) -> list[SessionOut]:
    rows = (
        await db.exec(
            select(AuthSession)
            .where(AuthSession.user_id == actor.user_id, col(AuthSession.ended_at).is_(None))
            .order_by(col(AuthSession.created_at).desc())
        )
    ).all()
    now = utcnow()
    return [
        SessionOut(
            id=s.public_id, created_at=as_utc(s.created_at) or now,
            last_seen_at=as_utc(s.last_seen_at) or now, user_agent=s.user_agent, ip=s.ip,
            current=s.id == actor.session_id,
        )
        for s in rows if is_live(s, settings, now)
    ]


async def end_own_session(db: AsyncSession, actor: Actor, public_id: str) -> None:
    """End one of the caller's sessions; another user's id looks absent (404)."""
    sess = (
        await db.exec(
            select(AuthSession).where(
                AuthSession.public_id == public_id, AuthSession.user_id == actor.user_id,
                col(AuthSession.ended_at).is_(None),
            )
        )
    ).first()
    if sess is None:
        raise NotFound("No such session.")
    await end_session(db, sess.id)
    await audit.record(
        db, action="session.end", actor_id=actor.user_id, actor_role=actor.role,
        resource=f"session:{public_id}", request_id=actor.meta.request_id, ip=actor.meta.ip,
    )
    await db.commit()


# --- two-factor ------------------------------------------------------------------

def _require_setup_stage(actor: Actor) -> None:
    if actor.stage not in (SessionStage.full, SessionStage.mfa_enroll):
        raise Unauthorized()


async def mfa_setup(db: AsyncSession, actor: Actor, settings: Settings) -> MfaSetupOut:
    """A new pending secret (replacing any earlier pending one); it takes effect
    only when a code from it is confirmed."""
    _require_setup_stage(actor)
    user = await _user(db, actor)
    if user.mfa_enabled:
        raise Conflict("Two-factor authentication is already on.", code="mfa_already_enabled")
    secret = mfa.new_secret()
    user.mfa_secret = mfa.encrypt_secret(settings.secret, user.id or 0, secret)
    db.add(user)
    await _record(db, actor, "mfa.setup")
    await db.commit()
    uri, svg = mfa.provisioning(secret, user.username, settings.clinic_name)
    return MfaSetupOut(secret=secret, otpauth_uri=uri, qr_svg=svg)


async def mfa_confirm(
    db: AsyncSession, actor: Actor, *, code: str, settings: Settings, mailer: Any
) -> MfaConfirmed:
    """Turn two-factor on with a code from the pending secret; returns ten
    recovery codes (shown once). An enrolment session is replaced by a full one."""
    _require_setup_stage(actor)
    user = await _user(db, actor)
    if user.mfa_enabled:
        raise Conflict("Two-factor authentication is already on.", code="mfa_already_enabled")
    if not user.mfa_secret:
        raise Conflict("Start the set-up first.", code="mfa_setup_required")
    try:
        secret = mfa.decrypt_secret(settings.secret, user.id or 0, user.mfa_secret)
    except mfa.MfaSecretError:
        raise Conflict("Start the set-up again.", code="mfa_setup_required") from None
    if not await mfa.verify_totp(db, user.id or 0, secret, code.strip()):
        failures = await login.record_failure(
            db, norm=user.username_norm, user=user, meta=actor.meta, settings=settings,
            mailer=mailer, action="mfa.enable",
        )
        await login.failure_delay(failures)
        raise InvalidInput("code", "That code is not right. Enter the code your app shows now.")
    user.mfa_enabled = True
    db.add(user)
    codes = await mfa.replace_recovery_codes(db, user.id or 0)
    new_token = None
    if actor.stage == SessionStage.mfa_enroll:
        await end_session(db, actor.session_id)
        new_token = await create_session(db, user, SessionStage.full, actor.meta, settings)
        await audit.record(
            db, action="login.success", actor_id=user.id, actor_role=user.role,
            resource=f"user:{user.id}", request_id=actor.meta.request_id, ip=actor.meta.ip,
        )
    await _record(db, actor, "mfa.enable")
    await db.commit()
    await _notice(mailer, settings, user, "two-factor authentication is on",
                  "Two-factor authentication was turned on for your patient portal account.")
    return MfaConfirmed(recovery_codes=codes, new_session_token=new_token)


async def mfa_disable(
    db: AsyncSession, actor: Actor, *, current_password: str, code: str, settings: Settings,
    mailer: Any,
) -> None:
    """Patients only (for other roles two-factor is required)."""
    user = await _user(db, actor)
    if mfa.mfa_required_for(user.role):
        await _record(db, actor, "mfa.disable", outcome="denied")
        await db.commit()
        raise Forbidden("Your role requires two-factor authentication.", code="mfa_required_for_role")
    if not user.mfa_enabled:
        raise Conflict("Two-factor authentication is already off.", code="mfa_not_enabled")
    await _require_password(db, actor, user, current_password, settings, mailer)
    if await mfa.check_code(db, user, code, settings.secret) is None:
        failures = await login.record_failure(
            db, norm=user.username_norm, user=user, meta=actor.meta, settings=settings,
            mailer=mailer, action="mfa.disable",
        )
        await login.failure_delay(failures)
        raise InvalidInput("code", "That code is not right.")
    user.mfa_enabled = False
    user.mfa_secret = None
    db.add(user)
    await mfa.delete_recovery_codes(db, user.id or 0)
    await mfa.forget_steps(db, user.id or 0)
    await _record(db, actor, "mfa.disable")
    await db.commit()
    await _notice(mailer, settings, user, "two-factor authentication is off",
                  "Two-factor authentication was turned off for your patient portal account.")

