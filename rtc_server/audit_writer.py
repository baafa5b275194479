"""Audit rows of read-only requests, written in batches (group commit).

A request that only reads health data still owes an audit row, and the row
must be durable before the answer goes out. Committing it in the request's own
transaction makes every read a write transaction; on SQLite, with its single
writer, that serialises every read behind every other. Instead the request
hands its row to this instance's :class:`AuditWriter` and awaits the commit of
the batch that holds it: the writer inserts every row that gathered while the
previous batch committed, in one transaction. A request never gets its answer
before its row is committed, and a failed batch fails every request in it.

Rows are tagged as they are inserted (``audit.bind_key``), exactly as rows
inserted through the ORM are, so the sealer (``audit.Sealer``) treats them
alike. One writer per engine and process: ids still arrive in commit order.

A request that changed something keeps writing its audit row in its own
transaction (``audit.record`` then commit): the change and its row commit
together. :func:`audit.record_read` chooses.

The session check's activity mark (``auth.sessions``: ``last_seen_at``, at most
every ``TOUCH_EVERY`` per session) is the other write a read request makes; it
goes into the same batches (:meth:`AuditWriter.touch`), so a read request opens
no write transaction at all and the writes of many requests take SQLite's one
write lock once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("rtc_server.audit")

#: ``make_session_factory(engine, **{WRITER_INFO: writer})``: where sessions hand read audit rows.
WRITER_INFO = "rtc.audit_writer"
#: Rows per INSERT transaction at most (the rest wait for the next batch).
MAX_BATCH = 1000


class AuditWriteFailed(RuntimeError):
    """The batch holding the row did not commit (the request must not answer)."""


class AuditWriter:
    """Group commit for audit rows; ``start`` in the lifespan, ``aclose`` at shutdown."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._pending: list[tuple[str, dict[str, Any], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._conn: AsyncConnection | None = None
        #: Batches committed (for tests and diagnostics).
        self.batches = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    async def write(self, values: dict[str, Any]) -> None:
        """Insert one audit row (column values, no ``id``/``seq``/``digest``) and
        return once it is committed; raise ``AuditWriteFailed`` if it was not."""
        await self._submit("row", values)

    async def touch(self, session_id: str, now: Any) -> None:
        """Mark a session active at ``now`` (``last_seen_at``); return once committed."""
        await self._submit("touch", {"session_id": session_id, "now": now})

    async def _submit(self, kind: str, values: dict[str, Any]) -> None:
        if not self.running:
            raise AuditWriteFailed("the audit writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((kind, values, future))
        self._wake.set()
        # Shielded: a request cancelled while waiting still gets its row written.
        await asyncio.shield(future)

    async def aclose(self) -> None:
        """Write what is pending, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:self._max_batch]
                del self._pending[:self._max_batch]
                await self._commit(batch)
            if self._closing:
                await self._drop_connection()
                return

    async def _connection(self) -> AsyncConnection:
        """The writer's own connection, held between batches: requests that wait
        for a batch hold pool connections, so the writer must never wait for one."""
        if self._conn is None:
            self._conn = await self._engine.connect()
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _commit(self, batch: list[tuple[str, dict[str, Any], asyncio.Future[None]]]) -> None:
        from rtc_server import audit  # audit imports this module
        from rtc_server.auth.models import AuthSession

        try:
            rows = [audit.tagged_values(self._engine, v) for kind, v, _ in batch if kind == "row"]
            touches = [v for kind, v, _ in batch if kind == "touch"]
            conn = await self._connection()
            async with conn.begin():
                if touches:
                    table = AuthSession.__table__  # type: ignore[attr-defined]
                    await conn.execute(
                        update(table).where(table.c.id == bindparam("session_id"))
                        .values(last_seen_at=bindparam("now")), touches)
                if rows:
                    await conn.execute(insert(audit.AuditEvent.__table__), rows)  # type: ignore[attr-defined]
        except Exception:
            log.exception("audit batch of %d write(s) failed; failing its requests", len(batch))
            await self._drop_connection()
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(AuditWriteFailed("the audit row was not written"))
                    future.exception()  # retrieved: a cancelled request does not warn
            return
        self.batches += 1
        for _, _, future in batch:
            if not future.done():
                future.set_result(None)
