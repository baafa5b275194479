"""Password and secret-answer hashing: argon2id with OWASP's parameters
(m=19 MiB, t=2, p=1), always in a worker thread so the event loop never
blocks on a ~50 ms hash.
"""

from __future__ import annotations

import unicodedata

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
#: Verified against when the user does not exist, so both answers take as long.
_DUMMY_HASH = _hasher.hash("rtc-server timing equaliser")


def _nfc(secret: str) -> str:
    """The same password typed on macOS (NFD) and elsewhere (NFC) must match."""
    return unicodedata.normalize("NFC", secret)


async def hash_secret(secret: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, _nfc(secret))


def _verify(stored: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, secret) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_secret(stored: str | None, secret: str) -> bool:
    """True if ``secret`` matches ``stored``; with ``stored=None`` it still
    spends the same time and returns False."""
    return await anyio.to_thread.run_sync(_verify, stored, _nfc(secret))


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def normalize_answer(answer: str) -> str:
    """Security answers compare case- and space-insensitively."""
    return " ".join(answer.casefold().split())
