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

import asyncio
import collections
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.sql import sqltypes
from sqlalchemy.util.concurrency import await_
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


# --- aiosqlite in one hop per statement ---------------------------------------------
#
# aiosqlite runs every call on its connection's thread, and each call is a round
# trip between the event loop and that thread (a queue, a wake-up, a callback):
# the CPU cost of a hop is several times that of an indexed SELECT. SQLAlchemy's
# adapter makes five hops per statement (open a cursor, execute, fetch, close) and
# two more per transaction end (the session's rollback and the pool's reset), even
# when there is nothing to roll back. These classes make one hop per statement and
# none for a commit or rollback outside a transaction, where sqlite3 itself does
# nothing either. Statements, results and errors are exactly sqlite3's.

class _Done:
    """What SQLAlchemy reads of a cursor after it ran (the sqlite3 cursor is closed)."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, description: Any = None, rowcount: int = -1, lastrowid: int | None = None) -> None:
        self.description, self.rowcount, self.lastrowid, self.arraysize = description, rowcount, lastrowid, 1

    def close(self) -> None:
        pass


def _run_on_thread(raw: Any, operation: str, parameters: Any, many: bool) -> tuple[Any, Any]:
    cursor = raw.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else None
        return _Done(cursor.description, cursor.rowcount, cursor.lastrowid), rows
    finally:
        cursor.close()


class _OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()
    _awaitable_cursor_close = False

    def _make_new_cursor(self, connection: Any) -> Any:
        return None

    def _aenter_cursor(self, cursor: Any) -> Any:
        return _Done()

    async def _hop(self, operation: Any, parameters: Any, many: bool) -> None:
        aio = self._connection
        async with self._adapt_connection._execute_mutex:
            done, rows = await aio._execute(_run_on_thread, aio._conn, operation, parameters, many)
        self._cursor = done
        if rows is not None:
            self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._hop(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._hop(operation, seq_of_parameters, True)


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneHopCursor

    def _idle(self) -> bool:
        aio = self._connection
        return aio._connection is not None and not aio._connection.in_transaction

    def rollback(self) -> None:
        if not self._idle():
            super().rollback()

    def commit(self) -> None:
        if not self._idle():
            super().commit()


_closing: set[asyncio.Future[None]] = set()  # closes under way (a task needs a reference)


async def _open(connection: aiosqlite.Connection) -> aiosqlite.Connection:
    """Open ``connection`` even if the asking task is cancelled meanwhile (a worker
    stopped at shutdown): aiosqlite hands the new sqlite3 connection to a future
    nobody reads then, and it is dropped unclosed. Here the opening finishes in its
    own task and is closed once it has."""

    async def opened() -> aiosqlite.Connection:
        return await connection

    opening = asyncio.ensure_future(opened())
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        def close(done: asyncio.Future[aiosqlite.Connection]) -> None:
            if not done.cancelled() and done.exception() is None:
                closing = asyncio.ensure_future(done.result().close())
                _closing.add(closing)
                closing.add_done_callback(_closing.discard)

        opening.add_done_callback(close)
        raise


class _OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _OneHopConnection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True
        return _OneHopConnection(self, await_(_open(connection)))


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
        # Each aiosqlite connection is a thread: a few suffice (SQLite answers these
        # reads in microseconds), and fewer threads contend less for the GIL.
        engine = create_async_engine(url, connect_args={"timeout": 10}, hide_parameters=True,
                                     module=_OneHopDbapi(aiosqlite, sqlite3), pool_size=4, max_overflow=4)
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
