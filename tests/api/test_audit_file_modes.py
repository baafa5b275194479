"""The data directory and everything in it (database with -wal/-shm, outbox mail
with live links, audit head, secret key) is the server user's alone (security
review, finding 9): directories 0700, files 0600, under the usual umask 022."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.harness import free_port


def modes(root: Path) -> dict[str, str]:
    """Every directory and file under ``root`` (itself included) → its mode, octal."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def assert_private(root: Path) -> None:
    found = modes(root)
    wrong = {name: mode for name, mode in found.items()
             if mode != ("0o700" if (root / name).is_dir() else "0o600")}
    assert wrong == {}, found


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("RTC_")}
    return keep | {"RTC_DATA_DIR": str(data_dir), **extra}


async def rtc_server(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtc_server", *args, env=env, umask=0o022,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


@contextlib.asynccontextmanager
async def serving(env: dict[str, str], port: int) -> AsyncIterator[asyncio.StreamReader]:
    """``rtc-server serve`` under umask 022; yields its log as it is written."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtc_server", "serve", "--port", str(port), env=env, umask=0o022,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        yield proc.stderr
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def log_line(log: asyncio.StreamReader, pattern: str, timeout: float = 60) -> str:
    async def scan() -> str:
        while line := (await log.readline()).decode():
            if re.search(pattern, line):
                return line
        raise AssertionError(f"server exited before logging {pattern!r}")

    return await asyncio.wait_for(scan(), timeout)


async def test_the_server_keeps_its_data_to_its_own_user_under_umask_022(tmp_path: Path) -> None:
    data = tmp_path / "var" / "rtc"
    env = cli_env(data, RTC_NEW_PASSWORD="Harbor-Lantern-58")
    status, out = await rtc_server(env, "migrate")
    assert status == 0, out
    status, out = await rtc_server(env, "create-staff", "--username", "front.desk", "--role", "staff",
                                   "--email", "front.desk@example.org")
    assert status == 0, out

    port = free_port()
    async with serving(env, port) as log:
        await log_line(log, "Application startup complete")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            csrf = (await client.get("/api/v1/auth/csrf")).json()["csrf_token"]
            r = await client.post("/api/v1/auth/username/forgot", json={"email": "front.desk@example.org"},
                                  headers={"X-CSRF-Token": csrf})
            assert r.status_code == 202
        await log_line(log, r"mail written to outbox file")
        await log_line(log, r"audit chain head seq=\d+")

    names = set(modes(data))
    assert {"rtc_server.db", "secret_key", "audit-head", "outbox"} <= names
    assert any(n.endswith(".eml") for n in names) and any(n.endswith(".txt") for n in names)
    assert_private(data)
    assert oct(stat.S_IMODE((tmp_path / "var").stat().st_mode)) == "0o700"  # made for us, so ours too


async def test_an_embedded_app_makes_a_private_data_dir_under_umask_022(tmp_path: Path, smtp) -> None:
    from rtc_server import audit
    from rtc_server.app import create_app
    from rtc_server.db import create_engine
    from rtc_server.migrate import upgrade
    from tests.harness import csrf_client, make_settings

    # Defaults as an embedder gets them: SQLite and a generated key, both in the data dir.
    settings = make_settings(tmp_path, None, smtp, data_dir=tmp_path / "embedded", secret_key=None)
    old = os.umask(0o022)
    try:
        engine = create_engine(settings)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            client = await csrf_client(app)
            try:
                r = await client.post("/api/v1/auth/login", json={"username": "nobody.here",
                                                                 "password": "Not-The-One-77"})
                assert r.status_code == 401
            finally:
                await client.aclose()
            await app.state.audit_sealer.run_once()
        assert audit.read_head_file(settings.audit_head_file) is not None
        if settings.database_url_effective.startswith("sqlite"):
            assert (settings.data_dir / "rtc_server.db").exists()
    finally:
        os.umask(old)
    assert_private(settings.data_dir)


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("POSIX modes", allow_module_level=True)
