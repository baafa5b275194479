"""Single-use emailed tokens: activation, password reset, email change.

Tokens carry 256 random bits; only their SHA-256 is stored. ``consume``
marks one used in the caller's transaction, so a link works exactly once;
``revoke`` voids a user's unused links (a new link, a reset, a cancelled change).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import AccountToken, TokenPurpose
from rtc_server.auth.tokens import new_token, token_hash
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import Gone, NotFound

TTL = {
    TokenPurpose.activation: timedelta(hours=48),
    TokenPurpose.password_reset: timedelta(hours=1),
    TokenPurpose.email_change: timedelta(hours=48),
}


async def issue(
    db: AsyncSession, *, user_id: int, purpose: TokenPurpose, email: str | None = None,
    ttl: timedelta | None = None,
) -> str:
    """Create a token (the caller commits and mails it); earlier unused ones of the
    same purpose for this user stop working."""
    await revoke(db, user_id, purpose)
    now = utcnow()
    token = new_token()
    db.add(AccountToken(
        token_hash=token_hash(token), purpose=purpose, user_id=user_id, email=email,
        created_at=now, expires_at=now + (ttl or TTL[purpose]),
    ))
    return token


async def revoke(db: AsyncSession, user_id: int, *purposes: TokenPurpose) -> None:
    """Void every unused token of ``purposes`` for a user (the caller commits)."""
    await db.exec(  # type: ignore[call-overload]
        update(AccountToken)
        .where(col(AccountToken.user_id) == user_id, col(AccountToken.purpose).in_(purposes),
               col(AccountToken.used_at).is_(None))
        .values(used_at=utcnow())
    )


async def peek(db: AsyncSession, token: str, purpose: TokenPurpose) -> AccountToken:
    """The live token row, without using it. Raises NotFound(token_invalid) or
    Gone(token_expired / token_used)."""
    if not token or len(token) > 200:
        raise NotFound("This link is not valid.", code="token_invalid")
    row = (
        await db.exec(select(AccountToken).where(AccountToken.token_hash == token_hash(token)))
    ).first()
    if row is None or row.purpose != purpose:
        raise NotFound("This link is not valid.", code="token_invalid")
    if row.used_at is not None:
        raise Gone("This link was already used.", code="token_used")
    expires = as_utc(row.expires_at)
    if expires is None or expires <= utcnow():
        raise Gone("This link has expired.", code="token_expired")
    return row


async def consume(db: AsyncSession, token: str, purpose: TokenPurpose) -> AccountToken:
    """Check and mark used (the caller commits). A concurrent second use loses:
    the UPDATE only succeeds while ``used_at`` is still empty."""
    row = await peek(db, token, purpose)
    result = await db.exec(  # type: ignore[call-overload]
        update(AccountToken)
        .where(col(AccountToken.id) == row.id, col(AccountToken.used_at).is_(None))
        .values(used_at=utcnow())
    )
    if result.rowcount != 1:
        raise Gone("This link was already used.", code="token_used")
    return row
