"""Group commit: messages are stored before they are acknowledged, without one
commit per message.

Socket and HTTP handlers hand validated drafts to the one ``GroupWriter`` of
their instance and get a future. The writer takes everything that gathered
while its previous transaction was committing (up to ``max_batch``) and
stores it in one transaction (``store_batch``), then answers every future
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
later (the trap in DESIGN.md, "Chat at speed"). Resends are found under the
same locks (UNIQUE(sender_id, client_id) is the backstop): a resend stores
nothing and is answered with the first insert's id and seq.

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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.chat.models import Conversation, Member, Message, Status
from rtc_server.db import SessionFactory, utcnow
from rtc_server.errors import Conflict, DomainError, NotFound

log = logging.getLogger("rtc_server.chat")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
W = TypeVar("W")

_C = Conversation.__table__.c  # type: ignore[attr-defined]
_M = Message.__table__.c  # type: ignore[attr-defined]
_MEMBER = Member.__table__.c  # type: ignore[attr-defined]

#: Drafts per transaction at most.
MAX_BATCH = 256
#: Drafts waiting at most; beyond it senders are told ``busy`` (try again shortly).
MAX_PENDING = 20_000
#: Attempts per batch before it is split.
ATTEMPTS = 3


class Busy(DomainError):
    status = 503
    code = "busy"
    message = "Too many messages are waiting to be stored; send again in a moment."


class TryAgain(DomainError):
    status = 503
    code = "try_again"
    message = "The message could not be stored; send it again."


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated message waiting to be stored (membership and limits checked)."""

    conversation_id: int
    sender_id: int
    client_id: str
    body: str
    #: The sender's role, shown beside the message (not stored: the account has it).
    sender_role: str = ""
    #: The socket it came from, if any (it has the text already; see ``relay``).
    origin: object | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Stored:
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
    origin: object | None = field(default=None, compare=False)


Outcome = Stored | DomainError


@dataclass(frozen=True, slots=True)
class Batch:
    """What one transaction stored: an outcome per draft, and who belongs to the
    conversations it touched (``conversation id → user ids``, for notices)."""

    outcomes: list[Outcome]
    members: dict[int, list[int]]


# --- the pure part -------------------------------------------------------------------

@dataclass(slots=True)
class Entry(Generic[K, T, W]):
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


# --- storing one batch ----------------------------------------------------------------

_LOCK = (select(_C.id, _C.last_seq, _C.status).where(_C.id.in_(bindparam("ids", expanding=True)))
         .order_by(_C.id).with_for_update())
_ADVANCE = (update(Conversation.__table__).where(_C.id == bindparam("b_id"))  # type: ignore[arg-type]
            .values(last_seq=bindparam("b_last"), last_message_at=bindparam("b_at")))
_INSERT = insert(Message.__table__).returning(_M.id, _M.conversation_id, _M.seq)  # type: ignore[arg-type]
_MEMBERS = (select(_MEMBER.conversation_id, _MEMBER.user_id)
            .where(_MEMBER.conversation_id.in_(bindparam("ids", expanding=True))))


async def store_batch(db: AsyncSession, drafts: Sequence[Draft], now: datetime, *,
                      check_resends: bool = True) -> Batch:
    """Store ``drafts`` in ``db``'s transaction (the caller commits). See the
    module docstring for the guarantees.

    Every statement is prepared once and reused whatever the batch size (no
    SQL compiled per batch), and each is one round trip. With
    ``check_resends=False`` the resend lookup is skipped: a resend then fails
    the insert on UNIQUE(sender_id, client_id) and the caller runs the batch
    again with it (resends are rare: they follow a lost connection)."""
    conn = await db.connection()
    ids = sorted({d.conversation_id for d in drafts})
    # Lock first (ascending ids), then look for resends: under the locks no
    # other writer can be inserting into these conversations.
    locked = {row[0]: [row[1], row[2]] for row in (await conn.execute(_LOCK, {"ids": ids})).all()}
    earlier: dict[tuple[int, str], Any] = {}
    if check_resends:
        keys = list({(d.sender_id, d.client_id) for d in drafts})
        # One index probe per key (OR of pairs): SQLite scans the whole index
        # for a row-value IN list, which grows with the table.
        earlier = {(r[0], r[1]): r for r in (await conn.execute(
            select(_M.sender_id, _M.client_id, _M.id, _M.conversation_id, _M.seq, _M.created_at)
            .where(or_(*(and_(_M.sender_id == s, _M.client_id == c) for s, c in keys)))
        )).all()}
    outcomes: list[Outcome | None] = []
    rows: list[dict[str, object]] = []
    fresh: list[int] = []
    for d in drafts:
        old = earlier.get((d.sender_id, d.client_id))
        if old is not None:
            if old[3] != d.conversation_id:
                outcomes.append(Conflict("This client_id was already used for another message.",
                                         code="client_id_reused"))
            else:
                outcomes.append(Stored(old[2], d.conversation_id, old[4], d.sender_id, d.client_id,
                                       "", old[5], created=False, sender_role=d.sender_role,
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
        state[0] += 1
        fresh.append(len(outcomes))
        outcomes.append(None)
        rows.append({"conversation_id": d.conversation_id, "seq": state[0], "sender_id": d.sender_id,
                     "client_id": d.client_id, "body": d.body, "created_at": now})
    members: dict[int, list[int]] = {}
    if rows:
        touched = sorted({r["conversation_id"] for r in rows})  # type: ignore[type-var]
        await conn.execute(_ADVANCE, [{"b_id": cid, "b_last": locked[cid][0], "b_at": now}  # type: ignore[index]
                                      for cid in touched])
        # Many rows, one INSERT … VALUES (…), (…) … RETURNING (insertmanyvalues).
        new_ids = {(r[1], r[2]): r[0] for r in (await conn.execute(_INSERT, rows)).all()}
        for at, row in zip(fresh, rows, strict=True):
            d = drafts[at]
            outcomes[at] = Stored(new_ids[(d.conversation_id, row["seq"])], d.conversation_id,  # type: ignore[index]
                                  row["seq"], d.sender_id, d.client_id, d.body, now,  # type: ignore[arg-type]
                                  created=True, sender_role=d.sender_role, origin=d.origin)
        for cid, uid in (await conn.execute(_MEMBERS, {"ids": touched})).all():
            members.setdefault(cid, []).append(uid)
    return Batch(outcomes, members)  # type: ignore[arg-type]


# --- the runner ----------------------------------------------------------------------

After = Callable[[list[Stored], dict[int, list[int]]], Awaitable[None]]


class GroupWriter:
    """One per instance (``ChatRuntime.writer``); ``start`` in the lifespan."""

    def __init__(self, session_factory: SessionFactory, *, after: After | None = None,
                 max_batch: int = MAX_BATCH, max_pending: int = MAX_PENDING,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._factory = session_factory
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
        except IntegrityError:
            pass  # a resend (or a race): the careful way below
        except DBAPIError as exc:
            log.info("chat writer: batch of %d not stored (%s); trying again", len(drafts),
                     type(exc.orig).__name__ if exc.orig else type(exc).__name__)
        for attempt in range(ATTEMPTS):
            try:
                return await self._commit(drafts)
            except DBAPIError as exc:
                log.info("chat writer: batch of %d not stored (%s), attempt %d",
                         len(drafts), type(exc.orig).__name__ if exc.orig else type(exc).__name__,
                         attempt + 1)
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
        async with self._factory() as db:
            batch = await store_batch(db, drafts, self._clock(), check_resends=check_resends)
            await db.commit()
        self.batches += 1
        return batch
