"""The password rules, each with the message shown next to the field.

At least 8 and at most 128 characters (accepted whole, Unicode allowed, never
truncated), an uppercase and a lowercase letter and a digit, not the username
nor containing it, and not one of the 20,000 most common passwords.
"""

from __future__ import annotations

import gzip
import unicodedata
from functools import lru_cache
from importlib import resources

MIN_LENGTH = 8
MAX_LENGTH = 128

RULES = [
    f"At least {MIN_LENGTH} and at most {MAX_LENGTH} characters.",
    "At least one uppercase letter, one lowercase letter and one number.",
    "Must not be or contain your username.",
    "Must not be a commonly used password.",
]


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    data = resources.files("rtc_server.data").joinpath("common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode().split())


def load_common_passwords() -> None:
    """Read the list once at start-up (sync file I/O: keep it off the request path)."""
    _common()


def password_problems(password: str, username: str | None = None) -> list[str]:
    """Every rule the password breaks, as user-facing messages (empty if fine)."""
    pw = unicodedata.normalize("NFC", password)
    problems: list[str] = []
    if len(pw) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    if len(pw) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    if not any(c.isupper() for c in pw):
        problems.append("Include at least one uppercase letter.")
    if not any(c.islower() for c in pw):
        problems.append("Include at least one lowercase letter.")
    if not any(c.isdigit() for c in pw):
        problems.append("Include at least one number.")
    if username:
        u = username.casefold()
        if u and u in pw.casefold():
            problems.append("Must not be or contain your username.")
    if pw.casefold() in _common() or pw in _common():
        problems.append("This password is too common; choose another.")
    return problems
