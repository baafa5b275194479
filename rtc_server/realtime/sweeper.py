"""One task per instance that closes sockets whose session has ended.

Every ``interval`` seconds it checks the sessions of all local connections in
one batched query (``live_session_ids``) and closes those that ended (log-out,
idle or absolute timeout, password change, a disabled account): first
``{"type":"session_ended"}``, then close 4401. A ``session_check`` event for
a user (announced after any commit that ends sessions) makes it check that
user's connections at once instead. An open socket never counts as activity,
so it cannot keep an idle session alive.

Per-socket timers would cost a task and a query per socket per tick; this
costs one query per tick per instance (split in chunks of ``CHUNK`` sessions,
well under any database's parameter limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from rtc_server.realtime.connection import Connection
from rtc_server.ws_errors import CLOSE_UNAUTHENTICATED

log = logging.getLogger("rtc_server.realtime")

#: Sessions per query (SQLite allows 32,766 parameters, asyncpg 32,767).
CHUNK = 10_000
SESSION_ENDED = '{"type":"session_ended"}'

#: ``check(session_ids) -> the ones still live``; one database round trip.
LivenessCheck = Callable[[list[str]], Awaitable[set[str]]]


class Sweeper:
    def __init__(self, check: LivenessCheck, *, interval: float) -> None:
        self._check = check
        self.interval = interval
        self._by_session: dict[str, set[Connection]] = {}
        self._urgent: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Completed sweeps (for tests and metrics).
        self.sweeps = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="session-sweeper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def add(self, conn: Connection, session_id: str) -> None:
        self._by_session.setdefault(session_id, set()).add(conn)

    def discard(self, conn: Connection, session_id: str) -> None:
        conns = self._by_session.get(session_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_session[session_id]

    def check_soon(self, conns: Iterable[Connection]) -> None:
        """Re-check these connections' sessions now rather than at the next tick."""
        for conn in conns:
            session_id = getattr(conn.principal, "session_id", None)
            if session_id is not None:
                self._urgent.add(session_id)
        self._wake.set()

    async def sweep(self, session_ids: Iterable[str] | None = None) -> int:
        """Check ``session_ids`` (default: every local session) and close the
        connections of those that ended; returns how many were closed."""
        ids = list(self._by_session if session_ids is None else session_ids)
        live: set[str] = set()
        for i in range(0, len(ids), CHUNK):
            live |= await self._check(ids[i:i + CHUNK])
        closed = 0
        for session_id in ids:
            if session_id in live:
                continue
            for conn in tuple(self._by_session.get(session_id, ())):
                conn.send_text(SESSION_ENDED)
                conn.close(CLOSE_UNAUTHENTICATED, "session ended")
                closed += 1
        self.sweeps += 1
        return closed

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time() + self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_full - loop.time()))
            self._wake.clear()
            urgent, self._urgent = self._urgent, set()
            full = loop.time() >= next_full
            if full:
                next_full = loop.time() + self.interval
            try:
                await self.sweep(None if full else urgent)
            except Exception:  # the database may be briefly away; try again next tick
                log.exception("session sweep failed")
