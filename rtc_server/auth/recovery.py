"""Forgot password and forgot username.

What these guarantee:

- ``forgot_password`` and ``forgot_username`` answer the same whether or not an
  account exists: mail is queued in the outbox (``notify.outbox``), sent by a
  worker after the commit, never on the request path.
  Mail goes to the address on file, never to one typed in the request (a typed
  email only selects accounts that already have it). Only active accounts count.
- A reset needs the emailed link (single use, 1 hour), then the security answer,
  then a new password that meets the rules. Answers count per link and per
  account before the answer is checked (atomically, so parallel guesses cannot
  exceed the limits; a right answer is given back): the fifth wrong answer on
  one link burns it; ten in a day per account answer 429. A reset ends every
  session, clears a log-in lock, voids every other unused reset or
  email-change link of the account and mails a notice.
- Requests made without signing in are audited with no actor (``actor_id``
  None): the account they concern is the ``resource``, not the one acting.
- An account with no security question (e.g. staff made on the command line)
  cannot reset online: its owner is mailed to contact the clinic instead, so a
  mailbox alone never resets a password.
"""

from __future__ import annotations

from contextlib import suppress

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import emailed_tokens, login, recovery_mail, throttle
from rtc_server.auth.accounts import normalize_email, normalize_username
from rtc_server.auth.actor import RequestMeta
from rtc_server.auth.models import TokenPurpose, User, UserStatus
from rtc_server.auth.password_policy import password_problems
from rtc_server.auth.passwords import hash_secret, normalize_answer, verify_secret
from rtc_server.auth.sessions import end_user_sessions
from rtc_server.config import Settings
from rtc_server.db import utcnow
from rtc_server.errors import Gone, InvalidInput, NotFound, RateLimited, Unauthorized
from rtc_server.notify.mail import link
from rtc_server.notify.outbox import queue_mail

PER_IP = (10, 3600)
PER_TARGET = (3, 3600)
WRONG_ANSWERS_PER_LINK = 5
WRONG_ANSWERS_PER_USER = (10, 86400)
MAX_ACCOUNTS_PER_EMAIL = 5


class ForgotPasswordIn(BaseModel):
    """Exactly one of the two."""

    username: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)


class ForgotUsernameIn(BaseModel):
    email: str = Field(max_length=320)


class ResetStartIn(BaseModel):
    token: str = Field(max_length=200)


class ResetIn(BaseModel):
    token: str = Field(max_length=200)
    security_answer: str = Field(max_length=300)
    # The policy's own length rules give the field message; this only bounds work.
    new_password: str = Field(max_length=1024)


async def _throttle(
    db: AsyncSession, kind: str, meta: RequestMeta, target: str, secret: bytes
) -> None:
    """Count the request (before the session reads or writes anything)."""
    engine = throttle.engine_of(db)
    await throttle.hit(engine, throttle.key_for(f"{kind}:ip", meta.ip or "unknown", secret),
                       limit=PER_IP[0], window_seconds=PER_IP[1])
    await throttle.hit(engine, throttle.key_for(f"{kind}:target", target, secret),
                       limit=PER_TARGET[0], window_seconds=PER_TARGET[1])


async def _active_by_email(db: AsyncSession, address: str) -> list[User]:
    return list((
        await db.exec(
            select(User)
            .where(func.lower(User.email) == address.lower(), User.status == UserStatus.active)
            .order_by(col(User.id))
            .limit(MAX_ACCOUNTS_PER_EMAIL)
        )
    ).all())


def _first_name(user: User) -> str | None:
    return user.display_name.split(" ")[0] if user.display_name else None


async def forgot_password(
    db: AsyncSession, *, body: ForgotPasswordIn, meta: RequestMeta, settings: Settings
) -> None:
    """Queue reset links for the active account named by username, or for each
    active account using an email address. Silent when there is none."""
    username = (body.username or "").strip()
    email = (body.email or "").strip()
    if bool(username) == bool(email):
        raise InvalidInput("username", "Enter your username or your email address.")
    if username:
        target = "u:" + normalize_username(username)
    else:
        address = normalize_email(email)
        if address is None:
            raise InvalidInput("email", "Enter a valid email address, such as name@example.com.")
        target = "e:" + address.lower()
    await _throttle(db, "forgot_password", meta, target, settings.secret)
    if username:
        user = (
            await db.exec(select(User).where(User.username_norm == normalize_username(username),
                                             User.status == UserStatus.active))
        ).first()
        users = [user] if user is not None else []
    else:
        users = await _active_by_email(db, target[2:])
    if not users:
        await audit.record(db, action="password.reset_request", outcome="failure",
                           resource="user:none", request_id=meta.request_id, ip=meta.ip)
    for user in users:
        if not user.email or user.id is None:
            continue
        if not user.security_answer_hash:
            queue_mail(db, recovery_mail.password_reset_unavailable(
                to=user.email, name=_first_name(user), username=user.username,
                clinic=settings.clinic_name,
            ))
            continue
        token = await emailed_tokens.issue(db, user_id=user.id, purpose=TokenPurpose.password_reset,
                                           email=user.email)
        queue_mail(db, recovery_mail.password_reset(
            to=user.email, name=_first_name(user), username=user.username,
            clinic=settings.clinic_name,
            url=link(settings.base_url, "reset-password.html", token),
        ))
        await audit.record(db, action="password.reset_request", outcome="success",
                           patient_id=user.patient_id, resource=f"user:{user.id}",
                           request_id=meta.request_id, ip=meta.ip)
    await db.commit()


async def _reset_target(db: AsyncSession, token: str) -> tuple[int, User]:
    """The live reset token's id and its active user (the token is not used)."""
    row = await emailed_tokens.peek(db, token, TokenPurpose.password_reset)
    user = await db.get(User, row.user_id)
    if user is None or user.status != UserStatus.active or not user.security_answer_hash:
        raise NotFound("This link is not valid.", code="token_invalid")
    assert row.id is not None
    return row.id, user


async def reset_start(db: AsyncSession, *, token: str, meta: RequestMeta) -> str:
    """The security question for a live reset link; the link stays unused.
    Audited: it shows part of the account's secrets to whoever holds the link."""
    _, user = await _reset_target(db, token)
    question = user.security_question or ""
    await audit.record(db, action="password.reset_start", outcome="success",
                       patient_id=user.patient_id, resource=f"user:{user.id}",
                       request_id=meta.request_id, ip=meta.ip)
    await db.commit()
    return question


def _link_key(token_id: int) -> str:
    return f"reset_answer:token:{token_id}"


def _answers_key(user_id: int) -> str:
    return f"reset_answer:user:{user_id}"


async def reset_password(
    db: AsyncSession, *, body: ResetIn, meta: RequestMeta, settings: Settings
) -> None:
    """Check the answer, set the new password, end every session, clear any lock.
    Raises InvalidInput(new_password), Unauthorized(wrong_answer), NotFound/Gone
    for a bad link, RateLimited after too many wrong answers."""
    token_id, user = await _reset_target(db, body.token)
    assert user.id is not None
    user_id = user.id
    problems = password_problems(body.new_password, user.username)
    if problems:
        raise InvalidInput.many(("new_password", m) for m in problems)
    # Count the answer before checking it, on another connection: end the read
    # transaction first so nothing waits on this session.
    await db.commit()
    engine = throttle.engine_of(db)
    on_link = await throttle.count(engine, _link_key(token_id), window_seconds=2 * 3600)
    by_user = await throttle.count(engine, _answers_key(user_id),
                                   window_seconds=WRONG_ANSWERS_PER_USER[1])
    if by_user.count > WRONG_ANSWERS_PER_USER[0]:
        await audit.record(db, action="password.reset", outcome="denied",
                           patient_id=user.patient_id, resource=f"user:{user_id}",
                           request_id=meta.request_id, ip=meta.ip)
        await db.commit()
        raise RateLimited(retry_after=by_user.retry_after)
    # Answers beyond the link's limit in flight at once are not checked at all.
    right = on_link.count <= WRONG_ANSWERS_PER_LINK and await verify_secret(
        user.security_answer_hash, normalize_answer(body.security_answer))
    if not right:
        await _wrong_answer(db, token=body.token, user=user, meta=meta,
                            burn=on_link.count >= WRONG_ANSWERS_PER_LINK)
    await throttle.refund(engine, _answers_key(user_id))
    await emailed_tokens.consume(db, body.token, TokenPurpose.password_reset)
    # Any other link that could change the password or the address dies with this reset.
    await emailed_tokens.revoke(db, user_id, TokenPurpose.password_reset, TokenPurpose.email_change)
    now = utcnow()
    user.password_hash = await hash_secret(body.new_password)
    user.password_changed_at = now
    user.failed_logins, user.locked_until = 0, None
    db.add(user)
    await _clear_login_lock(db, user.username_norm, settings.secret)
    await end_user_sessions(db, user_id)
    await audit.record(db, action="password.reset", outcome="success", actor_id=user_id,
                       actor_role=user.role, patient_id=user.patient_id, resource=f"user:{user_id}",
                       request_id=meta.request_id, ip=meta.ip)
    if user.email:
        queue_mail(db, recovery_mail.password_changed(
            to=user.email, name=_first_name(user), username=user.username,
            clinic=settings.clinic_name))
    await db.commit()


async def _clear_login_lock(db: AsyncSession, username_norm: str, secret: bytes) -> None:
    """Proving identity by link and answer lifts a log-in lock: the same counters
    ``auth.login`` keeps per username."""
    await throttle.reset(db, login.user_key(secret, username_norm))
    await throttle.reset(db, login.lock_key(secret, username_norm))


async def _wrong_answer(
    db: AsyncSession, *, token: str, user: User, meta: RequestMeta, burn: bool
) -> None:
    """Record a wrong answer (already counted); ``burn`` uses up the link. Always raises."""
    assert user.id is not None
    user_id, patient_id = user.id, user.patient_id
    if burn:
        with suppress(Gone, NotFound):  # a parallel wrong answer burned it first
            await emailed_tokens.consume(db, token, TokenPurpose.password_reset)
    await audit.record(db, action="password.reset", outcome="failure",
                       patient_id=patient_id, resource=f"user:{user_id}",
                       request_id=meta.request_id, ip=meta.ip)
    await db.commit()
    if burn:
        raise Unauthorized("That answer does not match. This link no longer works; "
                           "request a new one.", code="wrong_answer")
    raise Unauthorized("That answer does not match the one on file.", code="wrong_answer")


async def forgot_username(
    db: AsyncSession, *, email: str, meta: RequestMeta, settings: Settings
) -> None:
    """Queue the username(s) of active accounts at ``email``, to that address."""
    address = normalize_email(email)
    if address is None:
        raise InvalidInput("email", "Enter a valid email address, such as name@example.com.")
    await _throttle(db, "forgot_username", meta, address.lower(), settings.secret)
    users = await _active_by_email(db, address)
    if not users:
        return
    for user in users:
        await audit.record(db, action="username.reminder", outcome="success",
                           patient_id=user.patient_id, resource=f"user:{user.id}",
                           request_id=meta.request_id, ip=meta.ip)
    queue_mail(db, recovery_mail.username_reminder(
        to=users[0].email or address, usernames=[u.username for u in users],
        clinic=settings.clinic_name))
    await db.commit()
