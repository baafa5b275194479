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

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from fhir_helpers import SAMPLES
from sqlalchemy.ext.asyncio import AsyncEngine

from rtc_server import audit
from rtc_server.db import SessionFactory, create_engine, make_session_factory
from tests.harness import make_settings, pg_exec, pg_url

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
















@pytest_asyncio.fixture
async def fresh_database(
    backend: str, _db_template: Path | str, tmp_path: Path,
) -> AsyncIterator[FreshDatabase]:
    """``await fresh_database()``: a session factory on a new, migrated,
    empty database of this test's backend; all are dropped afterwards."""
    engines: list[AsyncEngine] = []
    pg_names: list[str] = []

    async def make() -> SessionFactory:
        if backend == "sqlite":
            path = tmp_path / f"db{len(engines)}.db"
            shutil.copyfile(_db_template, path)
            url = f"sqlite+aiosqlite:///{path}"
        else:
            name = f"rtc_t_{uuid.uuid4().hex[:12]}"
            await pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{_db_template}"')
            pg_names.append(name)
            url = pg_url(name)
        engine = _engine(url, tmp_path / "data")
        engines.append(engine)
        return make_session_factory(engine)

    try:
        yield make
    finally:
        for engine in engines:
            await engine.dispose()
        for name in pg_names:
            await pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def session_factory(fresh_database: FreshDatabase) -> SessionFactory:
    return await fresh_database()
