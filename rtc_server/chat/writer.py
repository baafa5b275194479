"""Group commit: messages are stored before they are acknowledged, without one
commit per message.

Socket and HTTP handlers hand validated drafts to the one ``GroupWriter`` of
their instance and get a future. The writer takes everything that gathered
while its previous transaction was committing (up to ``max_batch``) and
stores it in one transaction (``chat.stores``), then answers every future
(the ack) and calls ``after`` with what was newly stored (local delivery and
the announcements). Nothing waits on a timer: under light load a batch is
one message, under heavy load the batches grow by themselves.

Sequences are gap-free and follow commit order, across instances: the batch
locks its conversations' rows (ascending id, so two writers never deadlock),
numbers each message from the locked ``last_seq`` and writes the new
``last_seq`` in the same transaction. A second writer touching the same
conversation waits for the lock and numbers after the first one's commit, so
"seq N is committed" implies "every seq below N is committed": a client that
resumes from the last seq it saw can never skip a message that commits
later (the trap in DESIGN.md, "Chat at speed").

Resends are rare (they follow a lost connection), so a batch first inserts
without looking for them: UNIQUE(sender_id, client_id) refuses a resend,
the transaction rolls back (nothing numbered, no gap) and the batch runs
again looking for resends under the same locks; a resend stores nothing and
is answered with the first insert's id and seq.

A batch that fails (a resend racing on another instance, SQLite busy, a
PostgreSQL deadlock) is retried; if it keeps failing, its drafts are stored
one by one so one bad draft cannot sink the others, and what still fails is
answered ``try_again`` (nothing stored, the client resends).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, NamedTuple, Protocol, TypeVar

from rtc_server.chat.models import Status
from rtc_server.db import SessionFactory, utcnow
from rtc_server.errors import Conflict, DomainError, NotFound

log = logging.getLogger("rtc_server.chat")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
W = TypeVar("W")


#: Drafts per transaction at most.
MAX_BATCH = 256
#: Drafts waiting at most; beyond it senders are told ``busy`` (try again shortly).
MAX_PENDING = 20_000
#: Attempts per batch before it is split.
ATTEMPTS = 3
#: How often ``checkpoint_forever`` copies SQLite's WAL into the database.
CHECKPOINT_SECONDS = 1.0


class Busy(DomainError):
    status = 503
    code = "busy"
    message = "Too many messages are waiting to be stored; send again in a moment."


class TryAgain(DomainError):
    status = 503
    code = "try_again"
    message = "The message could not be stored; send it again."


class Draft(NamedTuple):
    """A validated message waiting to be stored (membership and limits checked).
    (Tuples: thousands are made a second.)"""

    conversation_id: int
    sender_id: int
    client_id: str
    body: str
    #: The sender's role, shown beside the message (not stored: the account has it).
    sender_role: str = ""
    #: The socket it came from, if any (it has the text already; see ``relay``).
    origin: object | None = None


class Stored(NamedTuple):
    """A message as stored. ``created`` is False for a resend (the first insert's
    id and seq; ``body`` is then empty: the sender has it)."""

    id: int
    conversation_id: int
    seq: int
    sender_id: int
    client_id: str
    body: str
    sent_at: datetime
    created: bool
    sender_role: str = ""
    origin: object | None = None
    #: The files it carries (JSON, as stored), for messages stored with attachments.
    attachments: str | None = None


Outcome = Stored | DomainError


@dataclass(frozen=True, slots=True)
class Batch:
    """What one transaction stored: an outcome per draft, and who belongs to the
    conversations it touched (``conversation id → user ids``, for notices)."""

    outcomes: list[Outcome]
    members: dict[int, list[int]]


# --- the pure part -------------------------------------------------------------------

class Entry(NamedTuple, Generic[K, T, W]):
    key: K
    item: T
    waiters: list[W]


class Batcher(Generic[K, T, W]):
    """Group-commit bookkeeping without I/O: drafts in, batches out.

    - ``take`` returns the oldest ``max_items`` distinct drafts in arrival
      order (per conversation, arrival order is sequence order);
    - a draft whose key is already waiting (the same sender and client id sent
      twice before the first was stored) joins it: stored once, and every
      waiter gets the same answer;
    - ``full`` says when no more may be added (the caller answers ``busy``).
    """

    def __init__(self, max_items: int = MAX_BATCH, max_pending: int = MAX_PENDING) -> None:
        self.max_items = max_items
        self.max_pending = max_pending
        self._queue: deque[Entry[K, T, W]] = deque()
        self._by_key: dict[K, Entry[K, T, W]] = {}

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        return len(self._queue) >= self.max_pending

    def add(self, key: K, item: T, waiter: W) -> bool:
        """Queue ``item``; False if it joined an identical one already waiting."""
        waiting = self._by_key.get(key)
        if waiting is not None:
            waiting.waiters.append(waiter)
            return False
        entry = Entry(key, item, [waiter])
        self._queue.append(entry)
        self._by_key[key] = entry
        return True

    def take(self) -> list[Entry[K, T, W]]:
        batch = []
        while self._queue and len(batch) < self.max_items:
            entry = self._queue.popleft()
            del self._by_key[entry.key]
            batch.append(entry)
        return batch


# --- planning one batch (pure) ----------------------------------------------------------

#: conversation id → (last_seq, status), read under the conversations' locks.
Locked = dict[int, tuple[int, str]]
#: (sender_id, client_id) → (id, conversation_id, seq, sent_at) of messages already stored.
Earlier = dict[tuple[int, str], tuple[int, int, int, datetime]]


class Row(NamedTuple):
    """A message to insert, and where its outcome goes."""

    at: int
    conversation_id: int
    seq: int
    sender_id: int
    client_id: str
    body: str


@dataclass(slots=True)
class Planned:
    """What a batch will do: an outcome per draft (None until inserted), the
    rows to insert, and each touched conversation's new ``last_seq``."""

    drafts: Sequence[Draft]
    outcomes: list[Outcome | None]
    rows: list[Row]
    last_seq: dict[int, int]
    now: datetime

    def batch(self, ids: dict[tuple[int, int], int], members: dict[int, list[int]]) -> Batch:
        """The batch once inserted: ``ids`` maps (conversation, seq) to the new row ids."""
        outcomes = list(self.outcomes)
        for row in self.rows:
            d = self.drafts[row.at]
            outcomes[row.at] = Stored(ids[(row.conversation_id, row.seq)], d.conversation_id, row.seq,
                                      d.sender_id, d.client_id, d.body, self.now, created=True,
                                      sender_role=d.sender_role, origin=d.origin)
        return Batch(outcomes, members)  # type: ignore[arg-type]


def plan(drafts: Sequence[Draft], locked: Locked, earlier: Earlier, now: datetime) -> Planned:
    """Decide a batch from what the database said under its locks: a resend is
    answered with the stored message; a missing conversation is NotFound, a
    closed one a Conflict; every other draft gets the next sequence of its
    conversation, in arrival order."""
    outcomes: list[Outcome | None] = []
    rows: list[Row] = []
    last: dict[int, int] = {}
    for d in drafts:
        old = earlier.get((d.sender_id, d.client_id))
        if old is not None:
            if old[1] != d.conversation_id:
                outcomes.append(Conflict("This client_id was already used for another message.",
                                         code="client_id_reused"))
            else:
                outcomes.append(Stored(old[0], d.conversation_id, old[2], d.sender_id, d.client_id, "",
                                       old[3], created=False, sender_role=d.sender_role,
                                       origin=d.origin))
            continue
        state = locked.get(d.conversation_id)
        if state is None:
            outcomes.append(NotFound())
            continue
        if state[1] != Status.open:
            outcomes.append(Conflict("This conversation is closed; start a new message instead.",
                                     code="conversation_closed"))
            continue
        seq = last.get(d.conversation_id, state[0]) + 1
        last[d.conversation_id] = seq
        rows.append(Row(len(outcomes), d.conversation_id, seq, d.sender_id, d.client_id, d.body))
        outcomes.append(None)
    return Planned(drafts, outcomes, rows, last, now)


class ResendFound(Exception):
    """A draft's (sender_id, client_id) is stored already: run the batch again
    looking for resends first."""


class StoreUnavailable(Exception):
    """The database is busy or away; the batch may be tried again."""


class Store(Protocol):
    """Stores one batch in one transaction (``chat.stores``)."""

    async def store(self, drafts: Sequence[Draft], now: datetime, *, check_resends: bool) -> Batch: ...

    async def close(self) -> None: ...


# --- the runner ----------------------------------------------------------------------

After = Callable[[list[Stored], dict[int, list[int]]], Awaitable[None]]


class GroupWriter:
    """One per instance (``ChatRuntime.writer``); ``start`` in the lifespan."""

    def __init__(self, store: Store, *, after: After | None = None, max_batch: int = MAX_BATCH,
                 max_pending: int = MAX_PENDING, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = store
        self._after = after
        self._clock = clock
        self._batcher: Batcher[tuple[int, str], Draft, asyncio.Future[Stored]] = Batcher(
            max_batch, max_pending)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: Transactions committed and drafts stored (for tests and the benchmark).
        self.batches = 0
        self.stored = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chat-writer")

    async def close(self) -> None:
        """Store what is already queued, then stop; later drafts get ``try_again``."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._db.close()

    @property
    def pending(self) -> int:
        return len(self._batcher)

    def submit(self, draft: Draft) -> asyncio.Future[Stored]:
        """Queue ``draft``; the future resolves once it is committed (or fails
        with a DomainError). Raises ``Busy`` when too much is waiting."""
        if self._closing or self._task is None or self._task.done():
            raise TryAgain()
        if self._batcher.full:
            raise Busy()
        fut: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._batcher.add((draft.sender_id, draft.client_id), draft, fut)
        self._wake.set()
        return fut

    async def _run(self) -> None:
        while True:
            if not len(self._batcher):
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            entries = self._batcher.take()
            try:
                batch = await self._store([e.item for e in entries])
            except Exception:  # never let the writer die: answer and carry on
                log.exception("chat writer: a batch failed unexpectedly")
                batch = Batch([TryAgain() for _ in entries], {})
            created: list[Stored] = []
            for entry, outcome in zip(entries, batch.outcomes, strict=True):
                for fut in entry.waiters:
                    if fut.done():
                        continue
                    if isinstance(outcome, Stored):
                        fut.set_result(outcome)
                    else:
                        fut.set_exception(outcome)
                if isinstance(outcome, Stored) and outcome.created:
                    created.append(outcome)
            self.stored += len(created)
            if created and self._after is not None:
                try:
                    await self._after(created, batch.members)
                except Exception:
                    log.exception("chat writer: delivering a stored batch failed")

    async def _store(self, drafts: list[Draft]) -> Batch:
        try:
            return await self._commit(drafts, check_resends=False)
        except ResendFound:
            pass  # a resend (or a race on another instance): the careful way below
        except StoreUnavailable as exc:
            log.info("chat writer: batch of %d not stored (%s); trying again", len(drafts), exc)
        for attempt in range(ATTEMPTS):
            try:
                return await self._commit(drafts)
            except (ResendFound, StoreUnavailable) as exc:
                log.info("chat writer: batch of %d not stored (%s), attempt %d", len(drafts),
                         type(exc).__name__, attempt + 1)
                await asyncio.sleep(0.005 * 2**attempt)
        if len(drafts) == 1:
            return Batch([TryAgain()], {})
        outcomes: list[Outcome] = []
        members: dict[int, list[int]] = {}
        for draft in drafts:  # one at a time: one bad draft must not sink the others
            one = await self._store([draft])
            outcomes.extend(one.outcomes)
            members.update(one.members)
        return Batch(outcomes, members)

    async def _commit(self, drafts: list[Draft], *, check_resends: bool = True) -> Batch:
        batch = await self._db.store(drafts, self._clock(), check_resends=check_resends)
        self.batches += 1
        return batch


async def checkpoint_forever(session_factory: SessionFactory, every: float = CHECKPOINT_SECONDS) -> None:
    """Copy the WAL into the SQLite database in the background, on a connection
    of its own (PASSIVE: it never blocks the writer or readers, and its fsync
    runs on that connection's thread). The writer's connection never
    checkpoints (``stores.SqliteStore``)."""
    while True:
        await asyncio.sleep(every)
        try:
            async with session_factory() as db:
                conn = await db.connection()
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as exc:  # the next round tries again
            log.warning("chat: SQLite checkpoint failed (%s)", type(exc).__name__)
