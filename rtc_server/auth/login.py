"""Signing in and out: passwords, throttling and lockout, the two-factor step.

Guarantees:
- An unknown username, a wrong password, a pending or disabled account and a
  locked account all get the same ``invalid_credentials`` answer after the
  same work (one argon2 verification, against a dummy hash when there is no
  user) and the same growing delay, so the answer says nothing about who
  has an account.
- Attempts are counted per normalized username (an HMAC of it in the counter
  key, whether or not the account exists) and per IP address *before* the
  password is checked, atomically, and the decision comes from that count, so
  parallel requests cannot all slip under a limit; an attempt that succeeds is
  given back. ``LOCK_AFTER`` failures lock the username for ``LOCK_SECONDS``
  (attempts beyond it in flight at once fail unchecked); an existing user gets
  ``locked_until`` set and one email per lock, queued in the outbox
  (``notify.outbox``: waiting for SMTP would make the answer for an existing
  account slower). Attempts while locked do not count toward the next lock.
  Too many attempts from one IP address (``Settings.login_ip_limit``) give 429
  (audited as ``login.rate_limited``, outcome ``denied``). Each failure waits
  ``login_delay_step_seconds`` per recent failure, up to ``login_delay_max_seconds``.
- A sign-in with a recovery code queues a notice mail.
- Every sign-in creates a new session (and ends any session the browser
  presented), so a planted cookie never becomes an authenticated one; the
  step from two-factor to full rotates the session again.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import mfa, throttle
from rtc_server.auth.accounts import normalize_username
from rtc_server.auth.actor import RequestMeta
from rtc_server.auth.models import AuthSession, SessionStage, User, UserPublic, UserStatus
from rtc_server.auth.passwords import hash_secret, needs_rehash, verify_secret
from rtc_server.auth.sessions import create_session, end_session, load_session
from rtc_server.auth.tokens import token_hash
from rtc_server.config import Settings
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import RateLimited, Unauthorized
from rtc_server.notify.mail import Mail, compose
from rtc_server.notify.outbox import queue_mail

LOCK_AFTER = 5
LOCK_SECONDS = 15 * 60
#: Failures count toward a lock if they fall within this window of the first.
FAILURE_WINDOW_SECONDS = 60 * 60
IP_WINDOW_SECONDS = 15 * 60
MFA_ATTEMPTS_PER_SESSION = 5

INVALID_CREDENTIALS = "Incorrect username or password, or the account is temporarily locked."
INVALID_CODE = "That code is not right. Try the current code from your app, or a recovery code."


class LoginStatus(enum.StrEnum):
    ok = "ok"
    mfa_required = "mfa_required"
    mfa_enroll_required = "mfa_enroll_required"


@dataclass(frozen=True)
class LoginResult:
    status: LoginStatus
    token: str
    user: User


def public_user(user: User) -> UserPublic:
    return UserPublic(
        id=user.id or 0, username=user.username, role=user.role, display_name=user.display_name,
        mfa_enabled=user.mfa_enabled, patient_id=user.patient_id, time_zone=user.time_zone,
    )


def stage_after_password(user: User) -> SessionStage:
    if user.mfa_enabled:
        return SessionStage.mfa_pending
    if mfa.mfa_required_for(user.role):
        return SessionStage.mfa_enroll
    return SessionStage.full


_STATUS_FOR_STAGE = {
    SessionStage.full: LoginStatus.ok,
    SessionStage.mfa_pending: LoginStatus.mfa_required,
    SessionStage.mfa_enroll: LoginStatus.mfa_enroll_required,
}


def user_key(secret: bytes, norm: str) -> str:
    """The per-username failure counter (``recovery`` clears it after a reset)."""
    return throttle.key_for("login:user", norm, secret)


def lock_key(secret: bytes, norm: str) -> str:
    """The per-username lock, kept also for names that have no account."""
    return throttle.key_for("login:lock", norm, secret)


def _ip_key(secret: bytes, ip: str | None) -> str:
    return throttle.key_for("login:ip", ip or "unknown", secret)


def _resource(user: User | None, norm: str, secret: bytes) -> str:
    # No usernames of accounts that don't exist in the log: a keyed hash links
    # attempts (people type passwords here; a plain hash would give them away).
    return f"user:{user.id}" if user is not None else throttle.key_for("username", norm, secret)


async def _is_locked(
    db: AsyncSession, user: User | None, norm: str, now: datetime, secret: bytes
) -> bool:
    if user is not None:
        until = as_utc(user.locked_until)
        if until is not None and until > now:
            return True
    return await throttle.current(db, lock_key(secret, norm), LOCK_SECONDS) > 0


async def failure_delay(failures: int, settings: Settings) -> None:
    await asyncio.sleep(min(settings.login_delay_max_seconds,
                            settings.login_delay_step_seconds * max(1, failures)))


async def record_failure(
    db: AsyncSession, *, norm: str, user: User | None, meta: RequestMeta, settings: Settings,
    action: str = "login.failure", already_locked: bool = False, counted: int | None = None,
) -> int:
    """Count a failed proof of identity (password or code) and lock when due.

    ``counted``: the username's count from a caller that already counted this
    attempt (and the address's) before checking; otherwise both are counted here.
    Commits, first whatever the caller's session holds (counting runs on its
    own connection and must not wait on the caller's transaction), and again at
    the end. Returns the username's failure count, for the caller's delay.
    """
    await db.commit()
    engine = throttle.engine_of(db)
    secret = settings.secret
    now = utcnow()
    if counted is None:
        failures = (await throttle.count(
            engine, user_key(secret, norm), window_seconds=FAILURE_WINDOW_SECONDS
        )).count
        await throttle.count(engine, _ip_key(secret, meta.ip), window_seconds=IP_WINDOW_SECONDS)
    else:
        failures = counted
    newly_locked_user: User | None = None
    if failures >= LOCK_AFTER and not already_locked:
        lock = await throttle.count(engine, lock_key(secret, norm), window_seconds=LOCK_SECONDS)
        await throttle.reset(db, user_key(secret, norm))
        if user is not None and user.id is not None:
            until = now + timedelta(seconds=LOCK_SECONDS)
            result = await db.exec(  # type: ignore[call-overload]
                update(User)
                .where(col(User.id) == user.id,
                       or_(col(User.locked_until).is_(None), col(User.locked_until) <= now))
                .values(locked_until=until, failed_logins=0)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # this request made the lock: mail once
                user.locked_until = until
                newly_locked_user = user
        if lock.count == 1:  # this request started the lock (others raced into it)
            await audit.record(
                db, action="account.lock", outcome="success",
                resource=_resource(user, norm, secret), request_id=meta.request_id, ip=meta.ip,
            )
    elif user is not None and user.id is not None:
        await db.exec(  # type: ignore[call-overload]
            update(User).where(col(User.id) == user.id).values(failed_logins=failures)
            .execution_options(synchronize_session=False)
        )
    await audit.record(
        db, action=action, outcome="failure", actor_id=user.id if user else None,
        actor_role=user.role if user else None, resource=_resource(user, norm, secret),
        request_id=meta.request_id, ip=meta.ip,
    )
    if newly_locked_user is not None and newly_locked_user.email:
        # Through the outbox: waiting for SMTP here would make the answer for an
        # existing account slower than for a made-up name, revealing which is which.
        queue_mail(db, _lock_notice(newly_locked_user, settings))
    await db.commit()
    return failures


async def refuse_signed_in(
    db: AsyncSession, *, user: User, meta: RequestMeta, settings: Settings, action: str,
) -> None:
    """A signed-in user gave a wrong password or code: it counts toward the lock
    as a failed sign-in does, and waits the same growing delay, so a stolen
    session cannot guess freely. Commits; the caller raises."""
    failures = await record_failure(db, norm=user.username_norm, user=user, meta=meta,
                                    settings=settings, action=action)
    await failure_delay(failures, settings)


def _notice_name(user: User) -> str:
    return user.display_name or user.username


def _lock_notice(user: User, settings: Settings) -> Mail:
    assert user.email
    clinic = settings.clinic_name
    return compose(
        "account_locked", user.email, f"{clinic}: your account was locked", clinic,
        _notice_name(user),
        [
            "Your account was locked after failed sign-ins. "
            f"You can try again in {LOCK_SECONDS // 60} minutes.",
            "If this wasn't you, someone may be guessing your password. After the lock ends, "
            "reset your password with the link in this message.",
        ],
        ("Reset your password", f"{settings.base_url}/forgot-password.html"),
    )


def _recovery_code_notice(user: User, settings: Settings) -> Mail | None:
    if not user.email:
        return None
    clinic = settings.clinic_name
    return compose(
        "recovery_code_used", user.email, f"{clinic}: a recovery code was used", clinic,
        _notice_name(user),
        [
            "A two-factor recovery code was just used to sign in to your account. "
            "Each code works once. If this wasn't you, reset your password and "
            "contact the clinic.",
        ],
    )


async def _clear_failures(db: AsyncSession, user: User, secret: bytes) -> None:
    await throttle.reset(db, user_key(secret, user.username_norm))
    user.failed_logins = 0
    user.locked_until = None
    db.add(user)


async def _end_presented(db: AsyncSession, old_token: str | None) -> None:
    """End the session the browser came with, if any: sign-in never reuses it."""
    if old_token and len(old_token) <= 128:
        await end_session(db, token_hash(old_token))


async def sign_in(
    db: AsyncSession, *, username: str, password: str, meta: RequestMeta, settings: Settings,
    old_token: str | None = None,
) -> LoginResult:
    """Check a username and password; on success a new session (full, or a
    partial one waiting for two-factor). Raises Unauthorized
    (``invalid_credentials``) or RateLimited."""
    norm = normalize_username(username)
    engine = throttle.engine_of(db)
    secret = settings.secret
    # Count first, decide from the count (see the module docstring).
    ip_key = _ip_key(secret, meta.ip)
    from_ip = await throttle.count(engine, ip_key, window_seconds=IP_WINDOW_SECONDS)
    if from_ip.count > settings.login_ip_limit:
        await audit.record(
            db, action="login.rate_limited", outcome="denied",
            resource=_resource(None, norm, secret), request_id=meta.request_id, ip=meta.ip,
        )
        await db.commit()
        raise RateLimited(retry_after=from_ip.retry_after)
    name_key = user_key(secret, norm)
    attempt = (await throttle.count(
        engine, name_key, window_seconds=FAILURE_WINDOW_SECONDS
    )).count
    user = (
        await db.exec(select(User).where(User.username_norm == norm))
    ).first() if norm else None
    locked = await _is_locked(db, user, norm, utcnow(), secret)
    # End the read transaction: no pooled connection (or SQLite snapshot) is held
    # through the hash check and the counting, which use connections of their own.
    await db.commit()
    if locked:
        await throttle.refund(engine, name_key)
    ok = await verify_secret(user.password_hash if user else None, password)
    too_many = attempt > LOCK_AFTER  # in flight at once beyond the limit: not checked
    if not ok or user is None or user.status != UserStatus.active or locked or too_many:
        failures = await record_failure(
            db, norm=norm, user=user, meta=meta, settings=settings,
            already_locked=locked, counted=attempt,
        )
        await failure_delay(failures, settings)
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")

    # Not a failure after all: give the counted attempt back (before this
    # session writes, so the separate connection doesn't wait on it).
    await throttle.refund(engine, ip_key)
    stage = stage_after_password(user)
    if stage != SessionStage.full:
        # With two-factor pending the failure count stays: code failures add to it.
        await throttle.refund(engine, name_key)
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_secret(password)
        db.add(user)
    if stage == SessionStage.full:
        await _clear_failures(db, user, secret)
    await _end_presented(db, old_token)
    token = await create_session(db, user, stage, meta, settings)
    await audit.record(
        db, action="login.success" if stage == SessionStage.full else "login.password_ok",
        actor_id=user.id, actor_role=user.role, resource=f"user:{user.id}",
        request_id=meta.request_id, ip=meta.ip,
    )
    await db.commit()
    return LoginResult(_STATUS_FOR_STAGE[stage], token, user)


async def promote_session(
    db: AsyncSession, *, old_session_id: str, user: User, meta: RequestMeta, settings: Settings
) -> str:
    """End a partial session and start a full one (the caller commits)."""
    await end_session(db, old_session_id)
    return await create_session(db, user, SessionStage.full, meta, settings)


async def complete_mfa(
    db: AsyncSession, *, token: str | None, code: str, meta: RequestMeta, settings: Settings,
) -> LoginResult:
    """The second step: a TOTP code or an unused recovery code turns an
    ``mfa_pending`` session into a new full one. After
    ``MFA_ATTEMPTS_PER_SESSION`` wrong codes the partial session ends."""
    found = await load_session(db, token, settings)
    if found is None or found[0].stage != SessionStage.mfa_pending:
        raise Unauthorized()
    sess, user = found
    secret = settings.secret
    locked = await _is_locked(db, user, user.username_norm, utcnow(), secret)
    await db.commit()  # end the read transaction before counting on another connection
    # Counted before the code is checked, so parallel guesses can't exceed the limit.
    mfa_key = throttle.key_for("login:mfa", sess.id, secret)
    attempts = (await throttle.count(
        throttle.engine_of(db), mfa_key, window_seconds=settings.session_absolute_seconds,
    )).count
    too_many = attempts > MFA_ATTEMPTS_PER_SESSION
    kind = None if locked or too_many else await mfa.check_code(db, user, code, secret)
    if kind is None:
        if attempts >= MFA_ATTEMPTS_PER_SESSION or locked:
            await end_session(db, sess.id)
        failures = await record_failure(
            db, norm=user.username_norm, user=user, meta=meta, settings=settings,
            action="login.mfa_failure", already_locked=locked,
        )
        await failure_delay(failures, settings)
        raise Unauthorized(INVALID_CODE, code="invalid_code")

    await throttle.reset(db, mfa_key)
    await _clear_failures(db, user, secret)
    new_token = await promote_session(db, old_session_id=sess.id, user=user, meta=meta,
                                      settings=settings)
    if kind == "recovery":
        await audit.record(
            db, action="mfa.recovery_used", actor_id=user.id, actor_role=user.role,
            resource=f"user:{user.id}", request_id=meta.request_id, ip=meta.ip,
        )
    await audit.record(
        db, action="login.success", actor_id=user.id, actor_role=user.role,
        resource=f"user:{user.id}", request_id=meta.request_id, ip=meta.ip,
    )
    notice = _recovery_code_notice(user, settings) if kind == "recovery" else None
    if notice is not None:
        queue_mail(db, notice)
    await db.commit()
    return LoginResult(LoginStatus.ok, new_token, user)


async def sign_out(
    db: AsyncSession, *, token: str | None, meta: RequestMeta, settings: Settings
) -> int | None:
    """End the cookie's session on the server (a replayed cookie then fails);
    the signed-out user's id, if the session was live."""
    found = await load_session(db, token, settings, touch=False)
    if token:
        await _end_presented(db, token)
    if found is not None:
        sess, user = found
        await audit.record(
            db, action="logout", actor_id=user.id, actor_role=user.role,
            resource=f"session:{sess.public_id}", request_id=meta.request_id, ip=meta.ip,
        )
    await db.commit()
    return found[1].id if found is not None else None


@dataclass(frozen=True)
class SessionInfo:
    session: AuthSession
    user: User
    idle_expires_at: datetime
    absolute_expires_at: datetime


async def session_info(db: AsyncSession, *, token: str | None, settings: Settings) -> SessionInfo:
    """The cookie's session and its deadlines, without counting as activity
    (so a page polling for the idle warning doesn't keep itself alive)."""
    found = await load_session(db, token, settings, touch=False)
    if found is None:
        raise Unauthorized()
    sess, user = found
    last_seen = as_utc(sess.last_seen_at)
    expires = as_utc(sess.expires_at)
    assert last_seen is not None and expires is not None
    idle = min(expires, last_seen + timedelta(seconds=settings.session_idle_seconds))
    return SessionInfo(sess, user, idle, expires)
