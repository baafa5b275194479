"""One rule per concept, shared by every form that asks for it (registration,
Account Settings, recovery, the create-staff command), so a value accepted in
one place is never refused in another. Each ``*_problem(s)`` function returns
the field messages (empty or None when the value is fine); pages state the
same rules (``USERNAME_RULE`` ...).
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rtc_server.auth.passwords import normalize_answer

# --- usernames -------------------------------------------------------------------

USERNAME_MIN = 6
USERNAME_MAX = 64
USERNAME_RULE = (f"{USERNAME_MIN} to {USERNAME_MAX} characters: letters, numbers and . _ - @ + "
                 "(not case-sensitive).")
_USERNAME_OK = re.compile(r"^[\w.@+-]+$")


def username_problems(username: str) -> list[str]:
    u = username.strip()
    problems = []
    if len(u) < USERNAME_MIN:
        problems.append(f"Use at least {USERNAME_MIN} characters.")
    if len(u) > USERNAME_MAX:
        problems.append(f"Use at most {USERNAME_MAX} characters.")
    if u and not _USERNAME_OK.match(u):
        problems.append("Use letters, numbers and . _ - @ + only.")
    return problems


# --- ZIP codes ---------------------------------------------------------------------

#: Five digits, or ZIP+4 with or without the hyphen.
ZIP_PATTERN = re.compile(r"^\d{5}(?:-?\d{4})?$")
ZIP_MESSAGE = "Enter a 5-digit ZIP code, or ZIP+4 such as 12345-6789."


def zip_problem(value: str) -> str | None:
    return None if ZIP_PATTERN.match(value.strip()) else ZIP_MESSAGE


# --- security question and answer ----------------------------------------------------

QUESTION_MIN, QUESTION_MAX = 5, 200
ANSWER_MIN, ANSWER_MAX = 3, 200


def clean_question(question: str) -> str:
    """The question as stored: runs of white space made one space."""
    return " ".join(question.split())


def question_problem(question: str) -> str | None:
    q = clean_question(question)
    if not q:
        return "Choose or write a security question."
    if not QUESTION_MIN <= len(q) <= QUESTION_MAX:
        return f"Write a question of {QUESTION_MIN} to {QUESTION_MAX} characters."
    return None


def answer_problem(answer: str, *, password: str | None = None) -> str | None:
    norm = normalize_answer(answer)
    if not ANSWER_MIN <= len(norm) <= ANSWER_MAX:
        return f"Write an answer of {ANSWER_MIN} to {ANSWER_MAX} characters."
    if password is not None and norm == normalize_answer(password):
        return "Your answer must not be your password."
    return None


# --- optional text fields ---------------------------------------------------------------

def blank_to_none(value: Any) -> Any:
    """For ``field_validator(..., mode="before")``: surrounding white space goes,
    and a string left empty means "not given"."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def check_zone(name: str) -> str:
    """``name`` if it is an IANA time zone this server knows (a validator's ValueError otherwise)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("Unknown time zone; use a name such as America/New_York.") from None
    return name
