"""The demo as a newcomer meets it: the banner's two-factor hint works as printed,
the banner names the readable copies of the mail, and it comes after the server's
start-up lines instead of scrolling away among them."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import pyotp
import pytest

from rtc_server import cli
from rtc_server.app import create_app
from rtc_server.config import Settings
from rtc_server.demo.run import (
    DEMO_MARKER,
    demo_overrides,
    prepare_demo,
    print_when_serving,
    quiet_demo_logs,
)
from tests.harness import csrf_client


@pytest.fixture
def demo_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RTC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RTC_SECRET_KEY", "demo-" + "k" * 40)
    return Settings(**demo_overrides("127.0.0.1", 8000))


async def test_the_printed_two_factor_hint_gives_the_code_the_app_would(
    demo_settings: Settings, capsys: pytest.CaptureFixture[str], secrets_seen: set[str]
) -> None:
    shown: list[str] = []
    logins = await prepare_demo(demo_settings, show=shown.append)
    text = shown[0]
    provider = next(x for x in logins if x.role.value == "provider")
    hint = next(line.strip() for line in text.splitlines() if "totp --username" in line)
    argv = shlex.split(hint)
    assert argv[1:3] == ["-m", "rtc_server"] and argv[3:] == ["totp", "--username", provider.username]
    assert ".txt" in text and str(demo_settings.outbox_dir) in text
    # Clinic accounts are people with names, the provider the practitioner on file.
    assert "Dr. Elena Marsh, MD" in text and "provider (family medicine)" not in text

    # The provider logs in and is asked to set up two-factor sign-in.
    app = create_app(demo_settings)
    async with app.router.lifespan_context(app):
        client = await csrf_client(app)
        secrets_seen.add(provider.password)
        r = await client.post("/api/v1/auth/login",
                              json={"username": provider.username, "password": provider.password})
        assert r.json()["status"] == "mfa_enroll_required"
        secret = (await client.post("/api/v1/account/mfa/setup")).json()["secret"]
        secrets_seen.add(secret)

        # The command from the banner prints the code the app shows, and it is accepted.
        capsys.readouterr()
        assert await _run_cli(argv[3:]) == 0
        code = capsys.readouterr().out.strip()
        assert pyotp.TOTP(secret).verify(code, valid_window=1)
        r = await client.post("/api/v1/account/mfa/confirm", json={"code": code})
        assert r.status_code == 200
        secrets_seen.update(r.json()["recovery_codes"])
        await client.aclose()


async def test_totp_refuses_data_the_demo_did_not_make(
    demo_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await prepare_demo(demo_settings, show=lambda _text: None)
    (demo_settings.data_dir / DEMO_MARKER).unlink()
    assert await _run_cli(["totp", "--username", "dr.marsh"]) == 2
    assert "works only on the demo" in capsys.readouterr().err


async def _run_cli(argv: list[str]) -> int:
    """``rtc-server`` in a thread: it runs its own event loop."""
    import anyio.to_thread

    return await anyio.to_thread.run_sync(cli.main, argv)


def test_banner_is_printed_after_the_server_says_it_is_listening(
    capsys: pytest.CaptureFixture[str]
) -> None:
    print_when_serving("BANNER")
    server_log = logging.getLogger("uvicorn.error")
    server_log.info("Application startup complete.")
    assert "BANNER" not in capsys.readouterr().out
    server_log.info("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "127.0.0.1", 8000)
    server_log.info("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "127.0.0.1", 8000)
    assert capsys.readouterr().out.count("BANNER") == 1


def test_demo_log_keeps_problems_but_no_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    access, alembic = logging.getLogger("uvicorn.access"), logging.getLogger("alembic")
    filters, level = list(access.filters), alembic.level
    try:
        quiet_demo_logs()
        with caplog.at_level(logging.INFO):
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", "/", "1.1", 200)
            access.warning("a problem worth showing")
            logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 0001")
    finally:
        access.filters[:] = filters
        alembic.setLevel(level)
    assert [(r.name, r.levelname) for r in caplog.records] == [("uvicorn.access", "WARNING")]
