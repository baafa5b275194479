"""The suite-wide log guard: it must notice a secret in a log line, and the
app's own logging during a sign-in must give it nothing to notice."""

from __future__ import annotations

import logging

from tests.harness import create_user, find_leaks, sign_in


def test_guard_finds_a_secret_anywhere_in_a_line_and_ignores_short_values() -> None:
    lines = ["rtc_server.auth INFO user 5 signed in", "uvicorn.access INFO GET /x?token=abcdef123"]
    assert find_leaks(lines, {"abcdef123", "5"}) == ["abcdef123"]
    assert find_leaks(lines, {"not-there-xyz"}) == []


async def test_a_sign_in_logs_no_password_or_cookie(client, session_factory, secrets_seen, log_lines) -> None:
    logging.getLogger("rtc_server").setLevel(logging.DEBUG)
    start = len(log_lines)
    await create_user(session_factory, "guard.user")
    await sign_in(client, "guard.user", secrets_seen)
    await client.post("/api/v1/auth/login", json={"username": "guard.user", "password": "Wrong-Pass-77"})
    secrets_seen.add("Wrong-Pass-77")
    assert find_leaks(log_lines[start:], set(secrets_seen) | {client.cookies["rtc_session"]}) == []
