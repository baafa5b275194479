"""Hot read-only statements on the driver's own connections, past SQLAlchemy's
execution path.

Measured on the 2-core machine (bench/portal.py): a ``SELECT 1`` through an
``AsyncEngine`` connection (pool checkout, greenlet, result) costs about 250 µs
of CPU, more than the dashboard's whole statement takes SQLite to run (about
80 µs), while the same statement handed to the connection's thread in one step
costs about 5 µs. The pages patients open most (the dashboard, the lab list) read here.

A statement is still written with SQLAlchemy (so it is the same statement on
both backends and its types convert values as everywhere else): ``prepare``
compiles it once for the engine's dialect and keeps the SQL, the order of its
parameters and the type conversions of its parameters and columns. Rows come
back as named tuples of converted values (aware UTC datetimes, as ``db`` makes
them).

SQLite only: ``ReadPool.for_engine`` gives None for other databases, and callers
use the engine then (asyncpg's own path is already short). The connections are
``query_only``: nothing can be written through them. Each statement runs on the
connection's thread in one hop and is its own (read) transaction; WAL readers do
not wait for the writer.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import sqltypes

#: ``make_session_factory(engine, **{READ_POOL_INFO: pool})``: the instance's ReadPool (or absent).
READ_POOL_INFO = "rtc.read_pool"
#: Connections (one thread each): a couple overlap a statement with the loop's own work.
SIZE = 2


class Prepared:
    """A statement compiled once for one dialect, with its value conversions."""

    __slots__ = ("_binds", "_fixed", "_names", "_results", "row", "sql")

    def __init__(self, statement: Any, dialect: Any, dynamic: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self._names: list[str] = list(compiled.positiontup or ())
        # Constant parameters (literals in the statement) are converted once.
        fixed = compiled.construct_params({name: None for name in dynamic})
        self._binds: dict[str, Callable[[Any], Any] | None] = {}
        self._fixed: dict[str, Any] = {}
        for name in self._names:
            proc = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if name in dynamic:
                self._binds[name] = proc
            else:
                value = fixed[name]
                self._fixed[name] = proc(value) if proc is not None else value
        columns = list(statement.selected_columns)
        self._results = [_result_processor(c.type, dialect) for c in columns]
        self.row = namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for name in self._names:
            if name in self._fixed:
                out.append(self._fixed[name])
            else:
                proc = self._binds[name]
                value = params[name]
                out.append(proc(value) if proc is not None else value)
        return out

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        procs = self._results
        make = self.row._make
        return [make([p(v) if p is not None else v for p, v in zip(procs, r, strict=True)]) for r in raw]


def _sqlite_time(value: Any) -> Any:
    """SQLite's stored text of an aware column (UTC, as ``db`` writes it) → aware UTC."""
    if value is None or not isinstance(value, str):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _sqlite_naive_time(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _result_processor(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The type's own conversion, except SQLite's times: ``fromisoformat`` reads the
    stored text (``2026-11-27 19:00:00.000000``) to the same value at a fraction of
    the cost, and a year of labs is three hundred of them per answer."""
    if dialect.name == "sqlite" and isinstance(type_, sqltypes.DateTime):
        return _sqlite_time if type_.timezone else _sqlite_naive_time
    return type_.dialect_impl(dialect).result_processor(dialect, None)  # type: ignore[no-any-return]


def _fetch(connection: sqlite3.Connection, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
    cursor = connection.execute(sql, args)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _read_only(connection: sqlite3.Connection) -> None:
    for pragma in ("PRAGMA query_only=ON", "PRAGMA busy_timeout=10000"):
        connection.execute(pragma).close()


class ReadPool:
    """A few read-only connections to the engine's SQLite file; ``close`` at shutdown."""

    def __init__(self, engine: AsyncEngine, path: str, size: int = SIZE) -> None:
        self._dialect = engine.sync_engine.dialect
        self._path = path
        self._size = size
        self._connections: list[aiosqlite.Connection] = []
        self._next = itertools.count()
        self._prepared: dict[int, tuple[Any, Prepared]] = {}
        #: Statements run (for tests and diagnostics).
        self.executed = 0

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> ReadPool | None:
        url = engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return cls(engine, url.database)

    def prepare(self, statement: Any, dynamic: Sequence[str]) -> Prepared:
        """``statement`` compiled for this pool (once per statement object);
        ``dynamic``: the names of the parameters given at each execution."""
        found = self._prepared.get(id(statement))
        if found is None or found[0] is not statement:
            found = (statement, Prepared(statement, self._dialect, dynamic))
            self._prepared[id(statement)] = found
        return found[1]

    async def all(self, prepared: Prepared, params: Mapping[str, Any]) -> list[Any]:
        """The rows of ``prepared`` with ``params``."""
        connection = await self._connection()
        self.executed += 1
        raw = await connection._execute(_fetch, connection._conn, prepared.sql, prepared.arguments(params))
        return prepared.rows(raw)

    async def start(self) -> None:
        """Open the connections (in the lifespan, not on a request)."""
        for _ in range(self._size):
            connection = aiosqlite.connect(self._path, timeout=10)
            connection._thread.daemon = True
            await connection
            self._connections.append(connection)
            await connection._execute(_read_only, connection._conn)

    async def _connection(self) -> aiosqlite.Connection:
        if not self._connections:
            raise RuntimeError("the read pool is not open")
        return self._connections[next(self._next) % len(self._connections)]

    async def close(self) -> None:
        connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(Exception):
                await connection.close()
