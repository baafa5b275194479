"""Two-factor authentication with TOTP (RFC 6238) and one-time recovery codes.

- The TOTP secret is encrypted at rest (AES-256-GCM, key derived from the
  server secret with HKDF, the user id as associated data, so a secret copied
  onto another account row does not decrypt).
- A code is accepted for the current 30-second step or one either side, and
  each step works once per user: the last used step is kept in a
  ``RateCounter`` row (``count`` = step) and only moved forward by a
  conditional UPDATE, so two concurrent uses of one code cannot both pass.
- Recovery codes carry ~60 random bits and are stored as SHA-256 hashes
  (argon2 would add nothing for secrets this strong); each works once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
import time

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import RateCounter, RecoveryCode, Role, User
from rtc_server.db import utcnow

STEP_SECONDS = 30
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_RECOVERY_LEN = 12
_ENC_PREFIX = "v1:"

#: Roles that must have two-factor on before they get a full session.
MFA_REQUIRED_ROLES = frozenset({Role.provider, Role.staff, Role.admin})


class MfaSecretError(Exception):
    """A stored secret could not be decrypted (wrong server key or tampered row)."""


def mfa_required_for(role: Role | str) -> bool:
    return Role(role) in MFA_REQUIRED_ROLES


# --- secret storage ----------------------------------------------------------

def _key(server_secret: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"rtc-server/mfa", info=b"totp-secret v1"
    ).derive(server_secret)


def encrypt_secret(server_secret: bytes, user_id: int, secret: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key(server_secret)).encrypt(nonce, secret.encode(), f"user:{user_id}".encode())
    return _ENC_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt_secret(server_secret: bytes, user_id: int, stored: str) -> str:
    if not stored.startswith(_ENC_PREFIX):
        raise MfaSecretError("unknown format")
    try:
        raw = base64.urlsafe_b64decode(stored.removeprefix(_ENC_PREFIX))
        plain = AESGCM(_key(server_secret)).decrypt(raw[:12], raw[12:], f"user:{user_id}".encode())
    except (InvalidTag, ValueError) as exc:
        raise MfaSecretError("cannot decrypt") from exc
    return plain.decode()


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits


def provisioning(secret: str, username: str, issuer: str) -> tuple[str, str]:
    """The ``otpauth://`` URI and a QR code of it as SVG markup."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)
    out = io.BytesIO()
    # A standalone document (with its namespace): pages show it as an <img>.
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, scale=4, border=2,
                                    dark="#000", light="#fff")
    return uri, out.getvalue().decode()


# --- TOTP ------------------------------------------------------------------

def looks_like_totp(code: str) -> bool:
    c = code.replace(" ", "")
    return len(c) == 6 and c.isdigit()


def matching_step(secret: str, code: str, *, at: float | None = None) -> int | None:
    """The time step whose code equals ``code`` (current ±1), or None."""
    code = code.replace(" ", "")
    if not looks_like_totp(code):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int((time.time() if at is None else at) // STEP_SECONDS)
    found = None
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        # Compare every candidate (no early exit) so timing says nothing.
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def _step_key(user_id: int) -> str:
    return f"totp:last:{user_id}"


async def claim_step(db: AsyncSession, user_id: int, step: int) -> bool:
    """Record ``step`` as used; False if it (or a later one) was used already.

    Runs in its own short transaction on the same engine, so a code is spent
    the moment it is checked whatever the caller does next, and the caller's
    session and objects are left alone. The caller must not hold an open
    write transaction (SQLite has one writer).
    """
    key = _step_key(user_id)
    async with AsyncSession(db.bind, expire_on_commit=False) as own:
        result = await own.exec(  # type: ignore[call-overload]
            update(RateCounter)
            .where(col(RateCounter.key) == key, col(RateCounter.count) < step)
            .values(count=step, window_start=utcnow())
        )
        if result.rowcount == 1:
            await own.commit()
            return True
        exists = await own.get(RateCounter, key) is not None
        await own.commit()
        if exists:
            return False
        own.add(RateCounter(key=key, window_start=utcnow(), count=step))
        try:
            await own.commit()
        except IntegrityError:  # a concurrent request claimed it first
            await own.rollback()
            return False
        return True


async def forget_steps(db: AsyncSession, user_id: int) -> None:
    await db.exec(delete(RateCounter).where(col(RateCounter.key) == _step_key(user_id)))  # type: ignore[call-overload]


async def verify_totp(db: AsyncSession, user_id: int, secret: str, code: str) -> bool:
    step = matching_step(secret, code)
    if step is None:
        return False
    return await claim_step(db, user_id, step)


# --- recovery codes ------------------------------------------------------------

def _normalize_recovery(code: str) -> str:
    return "".join(ch for ch in code.casefold() if ch.isalnum())


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(_normalize_recovery(code).encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LEN))
    return "-".join(raw[i:i + 4] for i in range(0, _RECOVERY_LEN, 4))


async def replace_recovery_codes(db: AsyncSession, user_id: int) -> list[str]:
    """Ten fresh codes (the caller commits); earlier codes stop working."""
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))  # type: ignore[call-overload]
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    for code in codes:
        db.add(RecoveryCode(user_id=user_id, code_hash=_recovery_hash(code)))
    return codes


async def delete_recovery_codes(db: AsyncSession, user_id: int) -> None:
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))  # type: ignore[call-overload]


async def use_recovery_code(db: AsyncSession, user_id: int, code: str) -> bool:
    """Spend one unused recovery code (the caller commits); True if it was valid."""
    norm = _normalize_recovery(code)
    if len(norm) != _RECOVERY_LEN:
        return False
    row = (
        await db.exec(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user_id, RecoveryCode.code_hash == _recovery_hash(norm),
                col(RecoveryCode.used_at).is_(None),
            )
        )
    ).first()
    if row is None:
        return False
    result = await db.exec(  # type: ignore[call-overload]
        update(RecoveryCode)
        .where(col(RecoveryCode.id) == row.id, col(RecoveryCode.used_at).is_(None))
        .values(used_at=utcnow())
    )
    return result.rowcount == 1


# --- both ------------------------------------------------------------------

async def check_code(
    db: AsyncSession, user: User, code: str, server_secret: bytes, *, allow_recovery: bool = True
) -> str | None:
    """``"totp"`` or ``"recovery"`` if ``code`` is a valid second factor for
    ``user`` (spending it), else None.

    Call it before changing anything in ``db``: a TOTP step is spent at once
    in its own transaction; a recovery code is marked used in the caller's
    transaction, which the caller commits."""
    if not user.mfa_enabled or not user.mfa_secret or user.id is None:
        return None
    code = code.strip()
    if looks_like_totp(code):
        try:
            secret = decrypt_secret(server_secret, user.id, user.mfa_secret)
        except MfaSecretError:
            return None
        return "totp" if await verify_totp(db, user.id, secret, code) else None
    if allow_recovery and await use_recovery_code(db, user.id, code):
        return "recovery"
    return None

