"""Alembic environment: runs on the app's own async engine, SQLite or PostgreSQL.

On PostgreSQL an advisory lock makes concurrent ``migrate`` runs (several
instances starting together) take turns instead of racing.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from rtc_server.models_registry import metadata

target_metadata = metadata()
MIGRATION_LOCK = 0x727463  # "rtc"


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        if not sqlite:
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        context.run_migrations()


async def _run_async() -> None:
    from rtc_server.config import load_settings
    from rtc_server.db import create_engine

    engine = context.config.attributes.get("engine")
    own = engine is None
    if own:
        engine = create_engine(load_settings())
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    if own:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `rtc-server migrate`")
connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
