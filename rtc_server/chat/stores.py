"""Storing one batch of messages, at the database driver (the group writer's I/O).

The rest of the server goes through SQLAlchemy; the writer does not: a batch
is a handful of statements run thousands of times a second, and through the
ORM and aiosqlite each statement cost about 0.2 ms of CPU (a thread hop per
statement), more than the messages themselves. So:

- ``SqliteStore`` runs the whole batch in one call on its own thread with its
  own ``sqlite3`` connection: one thread hop per batch. ``BEGIN IMMEDIATE``
  takes SQLite's single write lock first, so what it reads is what it updates.
  Its connection leaves WAL checkpoints to ``checkpoint_forever``: SQLite would
  otherwise run one (with an fsync) inside whichever commit crosses the limit,
  and every message of that batch would wait for the disk.
- ``PostgresStore`` keeps one ``asyncpg`` connection and passes each batch as
  arrays (``unnest``): every statement is prepared once whatever the batch
  size; after the lock, one statement advances the conversations, inserts the
  messages and reads the members.

Both follow ``writer.plan`` and the guarantees in ``chat.writer``: the batch's
conversations are locked (PostgreSQL: ``FOR UPDATE`` in id order, so writers
on several instances never deadlock), sequences continue from the locked
``last_seq``, and ``last_seq`` is written in the same transaction.

Errors: ``ResendFound`` when the insert hit UNIQUE(sender_id, client_id) (run
the batch again with ``check_resends``), ``StoreUnavailable`` for what a retry
may cure (SQLite busy, a lost or restarting PostgreSQL, a deadlock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from rtc_server.chat.writer import (
    Batch,
    Draft,
    Earlier,
    Locked,
    ResendFound,
    Store,
    StoreUnavailable,
    plan,
)

log = logging.getLogger("rtc_server.chat")

#: Rows per INSERT statement on SQLite (6 parameters each, well under its limit).
_SQLITE_ROWS = 500
_SQLITE_INSERT = ("INSERT INTO chat_message (conversation_id, seq, sender_id, client_id, body, created_at) "
                  "VALUES ")


def open_store(database_url: str) -> Store:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return SqliteStore(url.database or "")
    return PostgresStore(url.set(drivername="postgresql").render_as_string(hide_password=False))


# --- SQLite ------------------------------------------------------------------------------

def _sqlite_time(value: datetime) -> str:
    """How SQLAlchemy stores a time in SQLite (UTC, microseconds always shown)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


class SqliteStore:
    def __init__(self, path: str) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="chat-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def store(self, drafts: Sequence[Draft], now: datetime, *, check_resends: bool) -> Batch:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._store, drafts, now, check_resends)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=10, isolation_level=None)
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL",
                           "busy_timeout=10000", "wal_autocheckpoint=0"):
                conn.execute(f"PRAGMA {pragma}")
            self._conn = conn
        return self._conn

    def _store(self, drafts: Sequence[Draft], now: datetime, check_resends: bool) -> Batch:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            batch = self._batch(conn, drafts, now, check_resends)
            conn.execute("COMMIT")
            return batch
        except sqlite3.IntegrityError as exc:
            self._rollback(conn)
            raise ResendFound() from exc
        except sqlite3.OperationalError as exc:
            self._rollback(conn)
            raise StoreUnavailable(type(exc).__name__) from exc
        except BaseException:
            self._rollback(conn)
            raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")

    @staticmethod
    def _batch(conn: sqlite3.Connection, drafts: Sequence[Draft], now: datetime,
               check_resends: bool) -> Batch:
        ids = sorted({d.conversation_id for d in drafts})
        marks = ",".join("?" * len(ids))
        locked: Locked = {row[0]: (row[1], row[2]) for row in conn.execute(
            f"SELECT id, last_seq, status FROM chat_conversation WHERE id IN ({marks})", ids)}  # noqa: S608
        earlier: Earlier = {}
        if check_resends:
            for key in {(d.sender_id, d.client_id) for d in drafts}:
                row = conn.execute("SELECT id, conversation_id, seq, created_at FROM chat_message "
                                   "WHERE sender_id = ? AND client_id = ?", key).fetchone()
                if row is not None:
                    earlier[key] = (row[0], row[1], row[2], _aware(row[3]))
        planned = plan(drafts, locked, earlier, now)
        if not planned.rows:
            return planned.batch({}, {})
        at = _sqlite_time(now)
        conn.executemany("UPDATE chat_conversation SET last_seq = ?, last_message_at = ? WHERE id = ?",
                         [(last, at, cid) for cid, last in planned.last_seq.items()])
        new_ids: dict[tuple[int, int], int] = {}
        for start in range(0, len(planned.rows), _SQLITE_ROWS):
            chunk = planned.rows[start:start + _SQLITE_ROWS]
            values = ",".join(["(?,?,?,?,?,?)"] * len(chunk))
            params = [v for r in chunk for v in (r.conversation_id, r.seq, r.sender_id, r.client_id,
                                                 r.body, at)]
            sql = (_SQLITE_INSERT + values  # placeholders only: the values travel as parameters
                   + " RETURNING id, conversation_id, seq")
            for mid, cid, seq in conn.execute(sql, params):
                new_ids[(cid, seq)] = mid
        touched = list(planned.last_seq)
        members: dict[int, list[int]] = {}
        for cid, uid in conn.execute(
                "SELECT conversation_id, user_id FROM chat_member WHERE conversation_id IN "  # noqa: S608
                f"({','.join('?' * len(touched))})", touched):
            members.setdefault(cid, []).append(uid)
        return planned.batch(new_ids, members)


# --- PostgreSQL --------------------------------------------------------------------------

_PG_LOCK = ("SELECT id, last_seq, status FROM chat_conversation WHERE id = ANY($1::int[]) "
            "ORDER BY id FOR UPDATE")
_PG_EARLIER = ("SELECT m.sender_id, m.client_id, m.id, m.conversation_id, m.seq, m.created_at "
               "FROM chat_message m JOIN unnest($1::int[], $2::text[]) AS k(s, c) "
               "ON m.sender_id = k.s AND m.client_id = k.c")
#: Advance the conversations, insert the messages and read the members: one round trip.
_PG_WRITE = (
    "WITH advanced AS ("
    " UPDATE chat_conversation AS c SET last_seq = v.last, last_message_at = $8"
    " FROM unnest($1::int[], $2::int[]) AS v(id, last) WHERE c.id = v.id"
    "), inserted AS ("
    " INSERT INTO chat_message (conversation_id, seq, sender_id, client_id, body, created_at)"
    " SELECT c, s, u, k, b, $8"
    " FROM unnest($3::int[], $4::int[], $5::int[], $6::text[], $7::text[]) AS r(c, s, u, k, b)"
    " RETURNING id, conversation_id, seq"
    ") SELECT id, conversation_id, seq, NULL::int AS user_id FROM inserted"
    " UNION ALL SELECT NULL, conversation_id, NULL, user_id FROM chat_member"
    " WHERE conversation_id = ANY($1::int[])"
)


class PostgresStore:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def store(self, drafts: Sequence[Draft], now: datetime, *, check_resends: bool) -> Batch:
        import asyncpg

        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, timeout=10)
            async with self._conn.transaction():
                return await self._batch(self._conn, drafts, now, check_resends)
        except asyncpg.UniqueViolationError as exc:
            raise ResendFound() from exc
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError,
                asyncpg.CannotConnectNowError) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        except (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.AdminShutdownError) as exc:
            await self.close()  # connect again for the next batch
            raise StoreUnavailable(type(exc).__name__) from exc

    @staticmethod
    async def _batch(conn: Any, drafts: Sequence[Draft], now: datetime, check_resends: bool) -> Batch:
        ids = sorted({d.conversation_id for d in drafts})
        locked: Locked = {r[0]: (r[1], r[2]) for r in await conn.fetch(_PG_LOCK, ids)}
        earlier: Earlier = {}
        if check_resends:
            keys = list({(d.sender_id, d.client_id) for d in drafts})
            for r in await conn.fetch(_PG_EARLIER, [k[0] for k in keys], [k[1] for k in keys]):
                earlier[(r[0], r[1])] = (r[2], r[3], r[4], r[5])
        planned = plan(drafts, locked, earlier, now)
        if not planned.rows:
            return planned.batch({}, {})
        touched = list(planned.last_seq)
        rows = planned.rows
        ids: dict[tuple[int, int], int] = {}
        members: dict[int, list[int]] = {}
        for mid, cid, seq, uid in await conn.fetch(
                _PG_WRITE, touched, [planned.last_seq[c] for c in touched],
                [r.conversation_id for r in rows], [r.seq for r in rows], [r.sender_id for r in rows],
                [r.client_id for r in rows], [r.body for r in rows], now):
            if mid is not None:
                ids[(cid, seq)] = mid
            else:
                members.setdefault(cid, []).append(uid)
        return planned.batch(ids, members)


# --- reading messages for delivery --------------------------------------------------------

#: (id, seq, sender_id, sender_role, client_id, body, sent_at, attachments JSON), in seq order.
MessageRow = tuple[int, int, int, str, str, str, datetime, str | None]


class Reader(Protocol):
    async def pages(self, wanted: Sequence[tuple[int, int]], limit: int) -> dict[int, list[MessageRow]]:
        """For each (conversation id, after seq): its next ``limit`` messages."""
        ...

    async def close(self) -> None: ...


def open_reader(database_url: str) -> Reader:
    """A reader with a connection of its own (reads never wait behind the writer)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return SqliteReader(url.database or "")
    return PostgresReader(url.set(drivername="postgresql").render_as_string(hide_password=False))


_SQLITE_PAGE = ("SELECT m.id, m.seq, m.sender_id, u.role, m.client_id, m.body, m.created_at, "
                "m.attachments "
                "FROM chat_message m JOIN user_account u ON u.id = m.sender_id "
                "WHERE m.conversation_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?")


class SqliteReader:
    """Every page of a round in one thread hop; each SELECT sees the latest commit."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="chat-sqlite-read")
        self._conn: sqlite3.Connection | None = None

    async def pages(self, wanted: Sequence[tuple[int, int]], limit: int) -> dict[int, list[MessageRow]]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._pages, wanted, limit)

    def _pages(self, wanted: Sequence[tuple[int, int]], limit: int) -> dict[int, list[MessageRow]]:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self._path, timeout=10, isolation_level=None)
                self._conn.execute("PRAGMA busy_timeout=10000")
            return {cid: [(r[0], r[1], r[2], r[3], r[4], r[5], _aware(r[6]), r[7])
                          for r in self._conn.execute(_SQLITE_PAGE, (cid, after, limit))]
                    for cid, after in wanted}
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, close)
        self._thread.shutdown(wait=True)


_PG_PAGES = ("SELECT k.c, m.id, m.seq, m.sender_id, u.role, m.client_id, m.body, m.created_at, "
             "m.attachments FROM unnest($1::int[], $2::int[]) AS k(c, after) CROSS JOIN LATERAL ("
             " SELECT id, seq, sender_id, client_id, body, created_at, attachments FROM chat_message"
             " WHERE conversation_id = k.c AND seq > k.after ORDER BY seq LIMIT $3) AS m "
             "JOIN user_account u ON u.id = m.sender_id ORDER BY k.c, m.seq")


class PostgresReader:
    """Every page of a round in one query."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None

    async def pages(self, wanted: Sequence[tuple[int, int]], limit: int) -> dict[int, list[MessageRow]]:
        import asyncpg

        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, timeout=10)
            rows = await self._conn.fetch(_PG_PAGES, [w[0] for w in wanted], [w[1] for w in wanted], limit)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise StoreUnavailable(type(exc).__name__) from exc
        out: dict[int, list[MessageRow]] = {cid: [] for cid, _ in wanted}
        for r in rows:
            out[r[0]].append((r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]))
        return out

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
