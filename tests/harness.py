"""Test-wide constants and helpers importable from any test module
(``from tests.harness import ...``); fixtures live in conftest.py.

Accounts are made directly in the database (``create_user``); sessions either
through the log-in endpoint (``sign_in``, ``enrolled_staff``) or, where a test
is not about signing in, directly (``create_signed_in_user``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.accounts import create_account
from rtc_server.auth.actor import RequestMeta
from rtc_server.auth.models import Role, SessionStage, User, UserStatus
from rtc_server.auth.sessions import create_session
from rtc_server.config import Settings
from rtc_server.db import create_engine, make_session_factory
from rtc_server.records.models import Patient
from rtc_server.records.names import normalize_name

IN_CI = os.environ.get("CI", "").lower() == "true"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fhir-samples"


def find_leaks(lines: list[str], secrets: set[str]) -> list[str]:
    """Secrets (6+ characters, so short ids don't false-alarm) found in any log line."""
    return sorted({s for s in secrets if len(s) >= 6 for line in lines if s in line})


def need(what: str, reason: str) -> None:
    """Skip outside CI, fail inside it: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI: {reason}")
    pytest.skip(f"{what} unavailable: {reason}")


#: Tests run without the product's deliberate delays (the sign-in failure delay,
#: the response floor); a test that asserts one sets it (``@pytest.mark.settings``).
FAST: dict[str, object] = {
    "login_delay_step_seconds": 0.0,
    "login_delay_max_seconds": 0.0,
    "response_floor_seconds": 0.0,
}


def make_settings(tmp_path: Path, database_url: str, smtp: object, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "smtp_url": f"smtp://127.0.0.1:{smtp.port}",  # type: ignore[attr-defined]
        "base_url": "http://testserver",
        "secret_key": "test-secret-" + "x" * 40,
        "redis_url": None,
        **FAST,
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


async def csrf_client(app: object, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """An API client that, like the web pages, echoes the CSRF cookie."""
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=base_url  # type: ignore[arg-type]
    )
    r = await client.get("/api/v1/auth/csrf")
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


# --- accounts, patients and sessions ------------------------------------------

#: The password of every test account unless a test says otherwise.
PASSWORD = "Harbor-Lantern-58"
#: ``create_user``'s default address: the username at example.org.
OWN_ADDRESS = "{username}@example.org"


async def add_user(
    db: AsyncSession, username: str, *, role: Role = Role.patient, password: str = PASSWORD,
    email: str | None = OWN_ADDRESS, status: UserStatus = UserStatus.active,
    display_name: str = "", patient_id: int | None = None,
) -> User:
    """Add an account through the real ``create_account`` (the caller commits)."""
    user = await create_account(
        db, username=username, password=password, role=role, display_name=display_name,
        email=email.format(username=username) if email is not None else None,
        patient_id=patient_id, status=status,
    )
    assert user.id is not None
    return user


async def create_user(session_factory: Any, username: str, **fields: Any) -> int:
    """Create and commit an account (``add_user``'s keywords); its id."""
    async with session_factory() as db:
        user = await add_user(db, username, **fields)
        await db.commit()
        assert user.id is not None
        return user.id


async def create_signed_in_user(
    session_factory: Any, settings: Settings, username: str, *,
    stage: SessionStage = SessionStage.full, **fields: Any,
) -> str:
    """Create an account and a session of ``stage`` for it without the log-in
    endpoint (staff would have to enrol in two-factor first); the session token."""
    async with session_factory() as db:
        user = await add_user(db, username, **fields)
        token = await create_session(db, user, stage, RequestMeta(None, None, None), settings)
        await db.commit()
    return token


def patient_row(
    *, given: str = "Maria", family: str = "Lopez", birth: date = date(1990, 5, 1),
    zip_code: str | None = "10001", email: str | None = None, mrn: str | None = None,
    phone: str | None = None,
) -> Patient:
    """A record on file, as the FHIR import would store it (not yet added)."""
    return Patient(
        given_name=given, family_name=family, given_norm=normalize_name(given),
        family_norm=normalize_name(family), birth_date=birth, zip=zip_code, email=email,
        mrn=mrn, phone=phone,
    )


async def create_patient(session_factory: Any, **fields: Any) -> int:
    """Create and commit a record on file (``patient_row``'s keywords); its id."""
    async with session_factory() as db:
        patient = patient_row(**fields)
        db.add(patient)
        await db.commit()
        assert patient.id is not None
        return patient.id


@asynccontextmanager
async def server_db(live_server: Any) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on a live server's database, for the test's own event
    loop (the server's engine belongs to the server thread's loop)."""
    engine = create_engine(live_server.settings)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


def token_from(link: str) -> str:
    """The token an emailed link carries."""
    return parse_qs(urlsplit(link).query)["token"][0]


async def log_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"username": username, "password": password})


async def sign_in(
    client: httpx.AsyncClient, username: str, secrets_seen: set[str], password: str = PASSWORD,
) -> dict[str, Any]:
    """Log in through the API (the password step); the reply's body. The password
    and the session token are registered as secrets that must never be logged."""
    secrets_seen.add(password)
    r = await log_in(client, username, password)
    assert r.status_code == 200, r.text
    secrets_seen.add(client.cookies["rtc_session"])
    return r.json()


async def enrol_mfa(client: httpx.AsyncClient, secrets_seen: set[str]) -> str:
    """Finish two-factor enrolment for a session waiting for it; the TOTP secret."""
    secret = (await client.post("/api/v1/account/mfa/setup")).json()["secret"]
    secrets_seen.add(secret)
    r = await client.post("/api/v1/account/mfa/confirm", json={"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200
    secrets_seen.update(r.json()["recovery_codes"])
    secrets_seen.add(client.cookies["rtc_session"])
    return secret


async def enrolled_staff(
    make_client: Any, session_factory: Any, secrets_seen: set[str], *,
    username: str = "site.admin", role: Role = Role.admin, **fields: Any,
) -> tuple[httpx.AsyncClient, int]:
    """A new client with a full staff session made the way a person makes one:
    password, then two-factor enrolment at first sign-in. The client and the user id."""
    user_id = await create_user(session_factory, username, role=role, **fields)
    client = await make_client()
    assert (await sign_in(client, username, secrets_seen))["status"] == "mfa_enroll_required"
    await enrol_mfa(client, secrets_seen)
    return client, user_id


# --- PostgreSQL test databases ---------------------------------------------------

#: The PostgreSQL server tests use (trust auth); each test creates its own database on it.
PG_URL = os.environ.get("RTC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def pg_exec(sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the test server's own database."""
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(PG_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_url(name: str) -> str:
    """The app's URL for database ``name`` on the test server."""
    base = _pg_dsn(PG_URL).rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
