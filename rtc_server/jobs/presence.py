"""Who has an open page, across instances.

A batched notice must not go to someone who is looking at the portal, and
that someone may be connected to any instance. Instances share only the
database and the broker; the broker (Redis pub/sub) keeps no state and
delivers at most once, so it cannot answer "is anyone connected now?". The
database can, and the notice is claimed there anyway: each instance mirrors
its own sockets into ``presence`` (one row per user with at least one open
socket here), writing only when a user's first socket opens or last one
closes, plus one UPDATE per heartbeat for all its rows. A row whose
instance stopped its heartbeat (a crash) counts for three heartbeats at
most, and any instance's heartbeat deletes it after ``DELETE_HEARTBEATS``.
Locally the count is exact and immediate.

The socket endpoint reports ``opened``/``closed`` (``chat.ws``); the writer
task flushes changes at once (a wake, not a timer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.db import SessionFactory, utcnow
from rtc_server.jobs.models import Presence

log = logging.getLogger("rtc_server.jobs")

_P = Presence.__table__.c  # type: ignore[attr-defined]
#: A row counts this many heartbeats after its last refresh.
STALE_HEARTBEATS = 3
#: Rows not refreshed for this many heartbeats (their instance is gone) are
#: deleted by any instance's heartbeat.
DELETE_HEARTBEATS = 10


class PresenceBoard:
    """This instance's open pages per user, mirrored into the database."""

    def __init__(self, session_factory: SessionFactory, *, heartbeat: float,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.instance_id = uuid.uuid4().hex
        self._factory = session_factory
        self._heartbeat = heartbeat
        self._clock = clock
        self._counts: dict[int, int] = {}
        self._dirty: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushed = asyncio.Condition()
        self._rounds = 0

    # --- the sockets of this instance --------------------------------------------------

    def opened(self, user_id: int) -> None:
        self._counts[user_id] = self._counts.get(user_id, 0) + 1
        if self._counts[user_id] == 1:
            self._dirty.add(user_id)
            self._wake.set()

    def closed(self, user_id: int) -> None:
        left = self._counts.get(user_id, 0) - 1
        if left > 0:
            self._counts[user_id] = left
            return
        self._counts.pop(user_id, None)
        self._dirty.add(user_id)
        self._wake.set()

    def here(self, user_id: int) -> bool:
        return user_id in self._counts

    # --- across instances ---------------------------------------------------------------

    async def present(self, db: AsyncSession, user_ids: set[int]) -> set[int]:
        """Those of ``user_ids`` with an open page on any instance (this one first)."""
        found = {u for u in user_ids if self.here(u)}
        rest = user_ids - found
        if rest:
            fresh = self._clock() - timedelta(seconds=self._heartbeat * STALE_HEARTBEATS)
            found |= set((await db.exec(select(_P.user_id).where(
                _P.user_id.in_(rest), _P.seen_at >= fresh, _P.instance_id != self.instance_id))).scalars())
        return found

    # --- the writer ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="presence")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with self._factory() as db:
                await db.exec(delete(Presence.__table__).where(  # type: ignore[arg-type]
                    _P.instance_id == self.instance_id))
                await db.commit()
        except Exception as exc:  # the rows expire by themselves
            log.warning("presence: could not clear this instance's rows (%s)", type(exc).__name__)

    async def flushed(self) -> None:
        """Return once every change reported so far is in the database (tests)."""
        want = self._rounds + 1
        self._wake.set()
        async with self._flushed:
            await self._flushed.wait_for(lambda: self._rounds >= want)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        beat_at = loop.time() + self._heartbeat
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, beat_at - loop.time()))
            self._wake.clear()
            beat = loop.time() >= beat_at
            if beat:
                beat_at = loop.time() + self._heartbeat
            try:
                await self._flush(beat)
            except Exception as exc:  # the database may be briefly away: next round
                log.warning("presence: writing failed (%s)", type(exc).__name__)
                await asyncio.sleep(min(1.0, self._heartbeat))
                self._wake.set()
            self._rounds += 1
            async with self._flushed:
                self._flushed.notify_all()

    async def _flush(self, beat: bool) -> None:
        dirty, self._dirty = self._dirty, set()
        now = self._clock()
        try:
            async with self._factory() as db:
                here = [u for u in dirty if self.here(u)]
                gone = [u for u in dirty if not self.here(u)]
                if gone:
                    await db.exec(delete(Presence.__table__).where(  # type: ignore[arg-type]
                        _P.instance_id == self.instance_id, _P.user_id.in_(gone)))
                if here:
                    make = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
                    stmt = make(Presence.__table__).values(  # type: ignore[arg-type]
                        [{"instance_id": self.instance_id, "user_id": u, "seen_at": now} for u in here])
                    await db.exec(stmt.on_conflict_do_update(
                        index_elements=["instance_id", "user_id"], set_={"seen_at": now}))
                if beat:
                    await self._beat(db, now)
                await db.commit()
        except BaseException:
            self._dirty |= dirty
            raise

    async def _beat(self, db: AsyncSession, now: datetime) -> None:
        """Refresh this instance's rows; delete any instance's rows long past
        counting (a crashed instance's). Should one of ours have been deleted
        while the database was away, it is written again."""
        expired = now - timedelta(seconds=self._heartbeat * DELETE_HEARTBEATS)
        await db.exec(delete(Presence.__table__).where(  # type: ignore[arg-type]
            _P.seen_at < expired, _P.instance_id != self.instance_id))
        if not self._counts:
            return
        refreshed = (await db.exec(update(Presence.__table__).where(  # type: ignore[arg-type]
            _P.instance_id == self.instance_id).values(seen_at=now))).rowcount
        if refreshed < len(self._counts):
            make = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
            stmt = make(Presence.__table__).values(  # type: ignore[arg-type]
                [{"instance_id": self.instance_id, "user_id": u, "seen_at": now} for u in self._counts])
            await db.exec(stmt.on_conflict_do_update(
                index_elements=["instance_id", "user_id"], set_={"seen_at": now}))
