"""Password hashing: argon2id, off the event loop, Unicode-normalised."""

from __future__ import annotations

import unicodedata

from rtc_server.auth.password_policy import password_problems
from rtc_server.auth.passwords import hash_secret, verify_secret


async def test_password_typed_in_decomposed_unicode_still_matches() -> None:
    composed = "Crème-Brûlée-2026"
    stored = await hash_secret(composed)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await verify_secret(stored, unicodedata.normalize("NFD", composed))
    assert not await verify_secret(stored, "Creme-Brulee-2026")


async def test_missing_hash_never_verifies() -> None:
    assert not await verify_secret(None, "anything")


def test_long_unicode_password_is_accepted_whole_and_129_is_not() -> None:
    assert password_problems("Aa1" + "ж" * 125) == []
    assert "Use at most 128 characters." in password_problems("Aa1" + "ж" * 126)
