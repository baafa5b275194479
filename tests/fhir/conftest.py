"""Fixtures for the FHIR tests: the real Synthea sample bundles, read from
../shared/fhir-samples (never copied into the repo), and fresh databases.

The importer and the export are services: their tests need a migrated
database, not the app. Each fresh database is a copy of one migrated per test
session (a file copy for SQLite, ``CREATE DATABASE ... TEMPLATE`` for
PostgreSQL), so a test may open several without paying for the migrations
each time. ``session_factory`` overrides the app-wide fixture of that name with
one such database (SQLite unless ``backend`` is parametrized to postgres).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from fhir_helpers import SAMPLES
from sqlalchemy.ext.asyncio import AsyncEngine

from rtc_server import audit
from rtc_server.db import SessionFactory, create_engine, make_session_factory
from rtc_server.migrate import upgrade
from tests.harness import make_settings, need

PG_URL = os.environ.get("RTC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_NO_MAIL = SimpleNamespace(port=25)  # settings need an SMTP URL; these tests send no mail

FreshDatabase = Callable[[], Awaitable[SessionFactory]]


@pytest.fixture(scope="session")
def samples() -> dict[str, dict[str, Any]]:
    """Every sample bundle, decoded once, by file name. Tests must not mutate them."""
    files = sorted(SAMPLES.glob("*.json"))
    if not files:
        reason = f"no FHIR sample bundles in {SAMPLES}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"FHIR samples are required in CI: {reason}")
        pytest.skip(reason)
    return {f.name: json.loads(f.read_text(encoding="utf-8")) for f in files}


def _engine(url: str, data_dir: Path) -> AsyncEngine:
    """An engine set up as the app sets up its own (imports write audit rows)."""
    settings = make_settings(data_dir, url, _NO_MAIL)
    engine = create_engine(settings)
    audit.bind_key(engine, settings.secret)
    return engine


async def _migrate(url: str, data_dir: Path) -> None:
    engine = _engine(url, data_dir)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _pg_base() -> str:
    return PG_URL.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{_pg_base()}/{PG_URL.rsplit('/', 1)[1]}", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_url(name: str) -> str:
    return "postgresql+asyncpg://" + _pg_base().split("://", 1)[1] + f"/{name}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with every migration applied, copied for each fresh database."""
    folder = tmp_path_factory.mktemp("fhir-template")
    path = folder / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}", folder))
    return path


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated PostgreSQL database to create fresh ones from (no one stays
    connected to it, as ``CREATE DATABASE ... TEMPLATE`` requires)."""
    name = f"rtc_tmpl_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # asyncpg raises many kinds when the server is down
        need("PostgreSQL", f"{PG_URL}: {type(exc).__name__}: {exc}")
    try:
        asyncio.run(_migrate(_pg_url(name), tmp_path_factory.mktemp("pg-template")))
        yield name
    finally:
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def template(backend: str, request: pytest.FixtureRequest) -> Path | str:
    """This test's backend's template (sync: the templates are built with asyncio.run)."""
    return request.getfixturevalue(  # type: ignore[no-any-return]
        "sqlite_template" if backend == "sqlite" else "postgres_template")


@pytest_asyncio.fixture
async def fresh_database(
    backend: str, template: Path | str, tmp_path: Path,
) -> AsyncIterator[FreshDatabase]:
    """``await fresh_database()``: a session factory on a new, migrated,
    empty database of this test's backend; all are dropped afterwards."""
    engines: list[AsyncEngine] = []
    pg_names: list[str] = []

    async def make() -> SessionFactory:
        if backend == "sqlite":
            path = tmp_path / f"db{len(engines)}.db"
            shutil.copyfile(template, path)
            url = f"sqlite+aiosqlite:///{path}"
        else:
            name = f"rtc_t_{uuid.uuid4().hex[:12]}"
            await _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            pg_names.append(name)
            url = _pg_url(name)
        engine = _engine(url, tmp_path / "data")
        engines.append(engine)
        return make_session_factory(engine)

    try:
        yield make
    finally:
        for engine in engines:
            await engine.dispose()
        for name in pg_names:
            await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def session_factory(fresh_database: FreshDatabase) -> SessionFactory:
    return await fresh_database()
