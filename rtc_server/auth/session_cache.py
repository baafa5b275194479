"""Live sessions remembered by this instance, so a signed-in request usually
asks the database nothing to learn who is asking.

Every request is still checked in full: the cached row holds what the
database row says (stage, user, role, patient, the idle and absolute
deadlines), and the idle and absolute limits are applied to it on every hit.
What makes trusting the row safe is that everything that changes it announces
``{"kind": "session_check"}`` on the user's ``user:<id>`` channel after its
commit (``auth.sessions.sessions_changed``: log-out, a replaced session,
password change or reset, two-factor, role change, "end this session"):

- The cache listens on the broker, on the channel of each user it holds, and
  drops that user's sessions when the event arrives, on every instance. The
  instance that made the change drops them itself after the commit as well,
  without waiting for the broker's echo.
- A row is cached only if its user's channel was confirmed subscribed *before*
  the row was read (the first request of a user subscribes and reads the
  database; later ones can be answered here), and only if no event arrived
  while it was being read (``Ticket``): an event is never lost between the read
  and the subscription.
- The cache is trusted only while the broker is healthy. While it is cut off
  (Redis down) every lookup goes to the database and nothing is cached; when it
  is back it reports a gap (events may have been lost) and the cache is emptied.
- A hit that looks idle or expired goes to the database too (another instance
  may have seen activity this one did not), and no entry is kept longer than
  ``ENTRY_SECONDS`` in any case.

Activity marks (``last_seen_at``) are written by the caller as before, at most
every ``TOUCH_EVERY`` per session; the cached row records the last one written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rtc_server.broker.base import Broker, BrokerUnavailable, Subscription

log = logging.getLogger("rtc_server.auth")

#: No entry is used longer than this after it was read (a bound on any surprise).
ENTRY_SECONDS = 60.0
#: Sessions held at most (the oldest go first).
MAX_SESSIONS = 50_000
#: Users whose channel the cache keeps at most (the oldest are dropped, channel and all).
MAX_USERS = 20_000
SESSION_CHECK_MARK = '"session_check"'


@dataclass(slots=True)
class CachedSession:
    """The columns ``auth.sessions.session_actor`` reads, as last read or written."""

    id: str
    stage: str
    ended_at: datetime | None
    last_seen_at: datetime
    expires_at: datetime
    user_id: int
    username: str
    role: str
    patient_id: int | None
    status: str
    #: ``loop.time()`` when read from the database.
    read_at: float


@dataclass(frozen=True, slots=True)
class Ticket:
    """Taken before a database read whose row may be cached (``SessionCache.ticket``)."""

    epoch: int
    order: int


class SessionCache:
    """Build in the lifespan with the instance's broker; ``start``, then ``close``."""

    def __init__(self, broker: Broker, *, max_sessions: int = MAX_SESSIONS, max_users: int = MAX_USERS,
                 entry_seconds: float = ENTRY_SECONDS) -> None:
        self._broker = broker
        self._max_sessions = max_sessions
        self._max_users = max_users
        self._entry_seconds = entry_seconds
        self._sessions: dict[str, CachedSession] = {}
        #: user id → the order number at which the user's channel was confirmed.
        self._users: dict[int, int] = {}
        self._subscribing: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None
        #: Bumped by every invalidation: a read that saw another epoch is not cached.
        self._epoch = 0
        self._order = 0
        #: Hits and misses (for tests and diagnostics).
        self.hits = 0
        self.misses = 0

    async def start(self) -> None:
        self._sub = await self._broker.subscribe((), self._on_message, self._on_gap)

    async def close(self) -> None:
        for task in tuple(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        sub, self._sub = self._sub, None
        self.clear()
        if sub is not None:
            with contextlib.suppress(BrokerUnavailable):
                await sub.close()

    @property
    def trusted(self) -> bool:
        """Whether events are reaching the cache (else it must not be believed)."""
        return self._sub is not None and not self._sub.closed and self._broker.healthy

    # --- lookups ---------------------------------------------------------------

    def get(self, session_id: str) -> CachedSession | None:
        """The cached row of ``session_id`` if it may be believed now, else None
        (the caller reads the database)."""
        entry = self._sessions.get(session_id)
        if entry is None or not self.trusted:
            self.misses += 1
            return None
        if asyncio.get_running_loop().time() - entry.read_at > self._entry_seconds:
            self._sessions.pop(session_id, None)
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def ticket(self) -> Ticket:
        """Take before reading a session row from the database."""
        self._order += 1
        return Ticket(self._epoch, self._order)

    def put(self, ticket: Ticket, row: Any, *, last_seen_at: datetime) -> None:
        """Remember ``row`` (a live session's columns, read after ``ticket`` was
        taken) if that is safe; otherwise make it safe for the next read (subscribe)."""
        if not self.trusted or ticket.epoch != self._epoch:
            return
        confirmed = self._users.get(row.user_id)
        if confirmed is None:
            self._subscribe_soon(row.user_id)
            return
        if confirmed >= ticket.order:  # confirmed while the row was being read
            return
        if len(self._sessions) >= self._max_sessions:
            self._sessions.pop(next(iter(self._sessions)))
        self._sessions[row.id] = CachedSession(
            id=row.id, stage=str(row.stage), ended_at=row.ended_at, last_seen_at=last_seen_at,
            expires_at=row.expires_at, user_id=row.user_id, username=row.username, role=str(row.role),
            patient_id=row.patient_id, status=str(row.status), read_at=asyncio.get_running_loop().time(),
        )

    def touched(self, session_id: str, at: datetime) -> None:
        """This instance wrote ``last_seen_at = at`` for the session."""
        entry = self._sessions.get(session_id)
        if entry is not None and at > entry.last_seen_at:
            entry.last_seen_at = at

    # --- invalidation ------------------------------------------------------------

    def drop_user(self, user_id: int) -> None:
        """Forget every session of ``user_id`` (something about them changed)."""
        self._epoch += 1
        for session_id in [k for k, v in self._sessions.items() if v.user_id == user_id]:
            del self._sessions[session_id]

    def clear(self) -> None:
        self._epoch += 1
        self._sessions.clear()

    def _on_message(self, channel: str, data: str) -> None:
        if SESSION_CHECK_MARK not in data:
            return
        kind, _, user = channel.partition(":")
        if kind == "user" and user.isdigit():
            self.drop_user(int(user))
        else:  # not expected; be safe
            self.clear()

    def _on_gap(self) -> None:
        """The broker reconnected: events may have been lost meanwhile."""
        self.clear()

    # --- subscriptions ----------------------------------------------------------

    def _subscribe_soon(self, user_id: int) -> None:
        if user_id in self._subscribing or self._sub is None:
            return
        self._subscribing.add(user_id)
        task = asyncio.create_task(self._subscribe(user_id), name="session-cache-subscribe")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe(self, user_id: int) -> None:
        sub = self._sub
        try:
            if sub is None:
                return
            if len(self._users) >= self._max_users:
                await self._forget_user(next(iter(self._users)))
            await sub.add(f"user:{user_id}")
            self._order += 1
            self._users[user_id] = self._order
        except BrokerUnavailable:
            pass  # the next read tries again
        except Exception:
            log.exception("session cache: could not subscribe")
        finally:
            self._subscribing.discard(user_id)

    async def _forget_user(self, user_id: int) -> None:
        self._users.pop(user_id, None)
        self.drop_user(user_id)
        if self._sub is not None:
            with contextlib.suppress(BrokerUnavailable):
                await self._sub.discard(f"user:{user_id}")
