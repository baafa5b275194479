"""Creating accounts and the username and email-address rules every path shares
(registration, recovery, the create-staff command, the demo, username changes).
The username rule itself lives in ``rtc_server.rules``."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import Role, User, UserStatus
from rtc_server.auth.password_policy import password_problems
from rtc_server.auth.passwords import hash_secret
from rtc_server.db import utcnow
from rtc_server.errors import Conflict, InvalidInput
from rtc_server.rules import USERNAME_MAX, USERNAME_MIN, username_problems

__all__ = ["USERNAME_MAX", "USERNAME_MIN", "check_credentials", "create_account", "normalize_email",
           "normalize_username", "username_problems", "username_taken"]

EMAIL_MAX = 254


def normalize_username(username: str) -> str:
    """Case-insensitive, Unicode-compatible form used for uniqueness."""
    return unicodedata.normalize("NFKC", username.strip()).casefold()


def normalize_email(value: str) -> str | None:
    """The address in a canonical form (domain lower-cased), or None if invalid."""
    value = value.strip()
    if not value or len(value) > EMAIL_MAX:
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


async def username_taken(db: AsyncSession, username: str, *, except_user: int | None = None) -> bool:
    row = (
        await db.exec(select(User.id).where(User.username_norm == normalize_username(username)))
    ).first()
    return row is not None and row != except_user


def check_credentials(username: str, password: str) -> None:
    """Raise InvalidInput naming each field whose rules are broken."""
    fields = [("username", m) for m in username_problems(username)]
    fields += [("password", m) for m in password_problems(password, username.strip())]
    if fields:
        raise InvalidInput.many(fields)


async def create_account(
    db: AsyncSession,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str = "",
    email: str | None = None,
    patient_id: int | None = None,
    status: UserStatus = UserStatus.active,
) -> User:
    """Add a user (the caller commits). Rules are checked; a taken username is
    a 422 on the ``username`` field, never a 500."""
    check_credentials(username, password)
    if await username_taken(db, username):
        raise InvalidInput("username", "That username is taken; choose another.")
    now = utcnow()
    user = User(
        username=username.strip(), username_norm=normalize_username(username),
        password_hash=await hash_secret(password), role=role, status=status,
        display_name=display_name or username.strip(), email=email, patient_id=patient_id,
        created_at=now, password_changed_at=now,
        activated_at=now if status == UserStatus.active else None,
    )
    db.add(user)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict("That username or record already has an account.") from exc
    return user
