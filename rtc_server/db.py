"""Async engine and session factory.

SQLite gets WAL (readers don't block the writer), foreign keys on, and a busy
timeout so concurrent writers wait rather than fail. PostgreSQL uses asyncpg.

Storage hands back aware UTC datetimes on both backends: SQLite keeps no
zone, so its ``DateTime(timezone=True)`` columns are read back as UTC (they
were written as UTC) and aware values are converted to UTC before writing.

Sessions from ``make_session_factory`` are ``AppSession``s: work deferred
with ``after_commit(db, fn)`` (events to publish, mail to send) runs once the
transaction commits, and is dropped if it rolls back. ``notify.events`` and
``notify.outbox`` build on it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.sql import sqltypes
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.config import Settings

log = logging.getLogger("rtc_server.db")

SessionFactory = async_sessionmaker[AsyncSession]
AfterCommit = Callable[[], Awaitable[None]]

_PENDING = "rtc.after_commit.pending"
_READY = "rtc.after_commit.ready"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (storage is always UTC)."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as aware UTC (storage already returns them so; kept for callers)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# --- SQLite ------------------------------------------------------------------

class _UtcSqliteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME for ``timezone=True`` columns: written in UTC, read back aware."""

    def bind_processor(self, dialect: Any) -> Any:
        inner = super().bind_processor(dialect)
        if not self.timezone:
            return inner

        def process(value: Any) -> Any:
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.astimezone(UTC)
            return inner(value) if inner else value

        return process

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        inner = super().result_processor(dialect, coltype)
        if not self.timezone:
            return inner

        def process(value: Any) -> Any:
            value = inner(value) if inner else value
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value

        return process


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    """Engines never put statement parameters in error messages: those hold
    names, emails and hashes, and error messages reach the log. Every engine
    tags the audit rows written through it with the server key
    (``audit.bind_key``), whoever made it: the app, a CLI command, a test."""
    from rtc_server import audit  # audit's tables use this module
    from rtc_server.datadir import ensure_private_dir, prepare_sqlite_file

    url = settings.database_url_effective
    if url.startswith("sqlite"):
        ensure_private_dir(settings.data_dir)
        engine = create_async_engine(url, connect_args={"timeout": 10}, hide_parameters=True)
        prepare_sqlite_file(engine.url.database)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # This engine's dialect only (set before any statement runs: types are memoized).
        dialect = engine.sync_engine.dialect
        dialect.colspecs = {**dialect.colspecs, sqltypes.DateTime: _UtcSqliteDateTime}
    else:
        engine = create_async_engine(
            url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True
        )
    audit.bind_key(engine, settings.secret)
    return engine


# --- sessions that act after commit -----------------------------------------------

class _SyncSession(Session):
    """The sync half of ``AppSession``; its events track commit and rollback."""


@event.listens_for(_SyncSession, "after_commit")
def _committed(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.info.setdefault(_READY, []).extend(pending)


@event.listens_for(_SyncSession, "after_soft_rollback")
def _rolled_back(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction, not a savepoint
        session.info.pop(_PENDING, None)


class AppSession(AsyncSession):
    """An AsyncSession that runs ``after_commit`` work once its transaction has
    committed (in order, each failure logged, never raised: the commit stands),
    and drops it when the transaction rolls back or the session closes uncommitted."""

    sync_session_class = _SyncSession

    async def commit(self) -> None:
        await super().commit()
        await self._run_committed()

    async def rollback(self) -> None:
        self.info.pop(_PENDING, None)
        await super().rollback()

    async def close(self) -> None:
        self.info.pop(_PENDING, None)
        await self._run_committed()  # e.g. committed through ``session.begin()``
        await super().close()

    async def _run_committed(self) -> None:
        while ready := self.info.pop(_READY, None):
            for fn in ready:
                try:
                    await fn()
                except Exception:  # the transaction committed; report and carry on
                    log.exception("after-commit work failed")


def after_commit(db: AsyncSession, fn: AfterCommit) -> None:
    """Run ``fn`` after ``db``'s current transaction commits; never if it rolls back.

    Raises TypeError for a session that cannot do this (not from
    ``make_session_factory``), so the work can never be silently lost."""
    if not isinstance(db, AppSession):
        raise TypeError("after_commit needs a session from rtc_server.db.make_session_factory")
    db.info.setdefault(_PENDING, []).append(fn)


def make_session_factory(engine: AsyncEngine, **info: Any) -> SessionFactory:
    """Sessions on ``engine``; ``info`` (e.g. the broker) is copied into each session's ``info``."""
    return async_sessionmaker(engine, class_=AppSession, expire_on_commit=False, info=info or None)
