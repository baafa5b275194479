"""Live delivery of conversations to the sockets of one instance.

A socket *follows* a conversation (``resume``); the relay then sends it every
message after the sequence it resumed from, exactly once and in order, and
the conversation's typing, receipt and change notices. Per instance:

- one broker subscription carries every followed conversation's channel
  (``conv:<id>``), subscribed once however many local sockets follow it;
- announcements carry ids and sequences, never text (the broker is not the
  record, and Redis is not a place for health data). The text comes from a
  bounded cache of recently stored messages, filled by this instance's writer
  (so a single instance never reads a message back) and by database reads,
  each message encoded once however many sockets get it;
- each (socket, conversation) has a ``Catchup`` that decides what to send;
  whatever the cache cannot serve is read by one fetcher task per instance,
  one query per conversation for all the sockets waiting on it, and paced by
  each socket's backlog so a long catch-up never overflows a slow client;
- messages stored here are delivered here directly, so local members keep
  chatting while Redis is away; when the broker reconnects (``on_gap``) every
  follower re-reads from the database, so nothing published meanwhile is lost.

The socket that sent a message does not get it back (it has the text and the
``ack``); the sender's other sockets do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from rtc_server.auth.models import Role
from rtc_server.broker.base import Broker, Subscription
from rtc_server.chat.access import Who, load_access, may_access
from rtc_server.chat.catchup import Catchup, Fetch, Step
from rtc_server.chat.stores import MessageRow, Reader
from rtc_server.db import SessionFactory
from rtc_server.notify.events import conversation_channel
from rtc_server.realtime.connection import Connection

log = logging.getLogger("rtc_server.chat")


#: Messages kept encoded for delivery (all conversations of the instance).
CACHE_SIZE = 20_000
#: Messages per database read during a catch-up.
PAGE = 100
#: A catching-up socket gets its next page only when fewer frames wait than this.
PACE_BACKLOG = 64
#: How often sockets that closed without saying so are forgotten.
PRUNE_SECONDS = 30.0

KIND_MESSAGE = "chat.message"
KIND_TYPING = "chat.typing"
KIND_READ = "chat.read"
KIND_DELIVERED = "chat.delivered"
KIND_CHANGED = "chat.changed"


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def message_frame(*, id: int, conversation_id: int, seq: int, sender_id: int, sender_role: str,
                  client_id: str, body: str, sent_at: datetime, attachments: str | None = None) -> str:
    """The ``message`` frame, encoded once for every socket that gets it. Only
    the text needs JSON escaping: ids are ints, the role and the client id
    (letters, digits, ``_.:-``) and the ISO time need none. ``attachments`` is
    the stored JSON list (written by us, so inserted as it is)."""
    files = f',"attachments":{attachments}' if attachments else ""
    return (f'{{"type":"message","conversation_id":{conversation_id},"seq":{seq},"id":{id},'
            f'"sender_id":{sender_id},"sender_role":"{sender_role}","client_id":"{client_id}",'
            f'"body":{_dumps(body)},"sent_at":"{sent_at.isoformat()}"{files}}}')


@dataclass(slots=True)
class Cached:
    seq: int
    frame: str
    #: The socket that sent it (it does not get it back), when stored here.
    origin: object | None = None


class MessageCache:
    """Recently stored messages as encoded frames; oldest out first."""

    def __init__(self, limit: int = CACHE_SIZE) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[int, int], Cached] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, conversation_id: int, item: Cached) -> None:
        key = (conversation_id, item.seq)
        known = self._items.get(key)
        if known is not None:
            if known.origin is None:
                known.origin = item.origin  # read back before the writer reported it
            return
        self._items[key] = item
        if len(self._items) > self.limit:
            self._items.popitem(last=False)

    def get(self, conversation_id: int, seq: int) -> Cached | None:
        return self._items.get((conversation_id, seq))

    def run(self, conversation_id: int, after: int, upto: int) -> list[Cached] | None:
        """Messages ``after+1 .. upto`` if all are here, else None."""
        out = []
        for seq in range(after + 1, upto + 1):
            item = self._items.get((conversation_id, seq))
            if item is None:
                return None
            out.append(item)
        return out


@dataclass(slots=True)
class SocketState:
    """A socket's chat state: who it is (for access) and what it follows."""

    who: Who | None = None
    follows: set[int] = field(default_factory=set)
    typing_at: dict[int, float] = field(default_factory=dict)


class _Followed:
    __slots__ = ("conversation_id", "followers", "ready")

    def __init__(self, conversation_id: int, ready: asyncio.Future[None]) -> None:
        self.conversation_id = conversation_id
        self.followers: dict[Connection, Catchup] = {}
        self.ready = ready


class ChatRelay:
    def __init__(self, broker: Broker, session_factory: SessionFactory, reader: Reader, *,
                 cache_size: int = CACHE_SIZE, page: int = PAGE) -> None:
        self._broker = broker
        self._factory = session_factory
        self._reader = reader
        self.cache = MessageCache(cache_size)
        self.page = page
        self._sub: Subscription | None = None
        self._followed: dict[int, _Followed] = {}
        self._sockets: dict[Connection, SocketState] = {}
        #: id(websocket) → its connection, to forget it when the endpoint ends.
        self._by_ws: dict[int, Connection] = {}
        #: conversation → the sockets waiting on a database read, and from where.
        self._dirty: dict[int, dict[Connection, Fetch]] = {}
        self._recheck: set[int] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: Database rounds made for delivery (for tests and the benchmark).
        self.reads = 0

    async def start(self) -> None:
        self._sub = await self._broker.subscribe((), self._on_message, self._on_gap)
        self._tasks = [asyncio.create_task(self._fetch_forever(), name="chat-fetcher"),
                       asyncio.create_task(self._prune_forever(), name="chat-prune")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sub is not None:
            await self._sub.close()
        await self._reader.close()
        self._followed.clear()
        self._sockets.clear()
        self._by_ws.clear()

    # --- sockets ---------------------------------------------------------------

    def socket(self, conn: Connection) -> SocketState:
        state = self._sockets.get(conn)
        if state is None:
            state = self._sockets[conn] = SocketState()
            self._by_ws[id(conn.ws)] = conn
        return state

    def follows(self, conn: Connection, conversation_id: int) -> bool:
        state = self._sockets.get(conn)
        return state is not None and conversation_id in state.follows

    def follower_count(self, conversation_id: int) -> int:
        f = self._followed.get(conversation_id)
        return len(f.followers) if f is not None else 0

    async def follow(self, conn: Connection, conversation_id: int, since: int) -> None:
        """Send ``conn`` every message of the conversation after ``since``, then
        live ones. Returns once the conversation's channel is subscribed (so
        nothing announced from now on is missed); BrokerUnavailable if it cannot be."""
        assert self._sub is not None, "relay not started"
        self.unfollow(conn, conversation_id)
        f = self._followed.get(conversation_id)
        if f is None:
            channel = conversation_channel(conversation_id)
            f = self._followed[conversation_id] = _Followed(
                conversation_id, asyncio.ensure_future(self._sub.add(channel)))
        catchup = Catchup(since)
        f.followers[conn] = catchup
        self.socket(conn).follows.add(conversation_id)
        try:
            await asyncio.shield(f.ready)
        except BaseException:
            self.unfollow(conn, conversation_id)
            raise
        if f.followers.get(conn) is catchup:
            self._serve(f, conn, catchup, catchup.start())

    def unfollow(self, conn: Connection, conversation_id: int) -> None:
        state = self._sockets.get(conn)
        if state is not None:
            state.follows.discard(conversation_id)
        f = self._followed.get(conversation_id)
        if f is None or f.followers.pop(conn, None) is None:
            return
        waiting = self._dirty.get(conversation_id)
        if waiting is not None:
            waiting.pop(conn, None)
        if not f.followers:
            del self._followed[conversation_id]
            if self._sub is not None and not self._sub.closed:
                task = asyncio.ensure_future(self._unsubscribe(f))
                task.add_done_callback(_log_failure)

    def forget(self, conn: Connection) -> None:
        """The socket closed: stop everything for it."""
        state = self._sockets.pop(conn, None)
        if self._by_ws.get(id(conn.ws)) is conn:
            del self._by_ws[id(conn.ws)]
        if state is not None:
            for conversation_id in tuple(state.follows):
                self.unfollow(conn, conversation_id)

    def forget_ws(self, ws: object) -> None:
        conn = self._by_ws.get(id(ws))
        if conn is not None and conn.ws is ws:
            self.forget(conn)

    async def _unsubscribe(self, f: _Followed) -> None:
        with contextlib.suppress(Exception):
            await f.ready
        if f.conversation_id not in self._followed and self._sub is not None:
            await self._sub.discard(conversation_channel(f.conversation_id))

    # --- inputs ----------------------------------------------------------------

    def stored(self, conversation_id: int, item: Cached) -> None:
        """This instance's writer committed a message: deliver it here now."""
        self.cache.put(conversation_id, item)
        self._announced(conversation_id, item.seq)

    def _announced(self, conversation_id: int, seq: int) -> None:
        f = self._followed.get(conversation_id)
        if f is None:
            return
        for conn, catchup in tuple(f.followers.items()):
            fetch = catchup.announced(seq)
            if fetch is not None:
                self._serve(f, conn, catchup, fetch)

    def _on_message(self, channel: str, data: str) -> None:
        if not channel.startswith("conv:"):
            return
        event = json.loads(data)
        kind = event.get("kind")
        cid = event.get("conversation_id")
        f = self._followed.get(cid) if isinstance(cid, int) else None
        if f is None:
            return
        if kind == KIND_MESSAGE:
            seq = event.get("seq")
            if isinstance(seq, int):
                self._announced(cid, seq)
        elif kind == KIND_TYPING:
            frame = _dumps({"type": "typing", "conversation_id": cid, "user_id": event.get("user_id")})
            self._broadcast(f, frame, skip_user=event.get("user_id"))
        elif kind in (KIND_READ, KIND_DELIVERED):
            frame = _dumps({"type": kind.removeprefix("chat."), "conversation_id": cid,
                            "user_id": event.get("user_id"), "seq": event.get("seq")})
            self._broadcast(f, frame)
        elif kind == KIND_CHANGED:
            self._broadcast(f, _dumps({"type": "conversation", "conversation_id": cid}))
            self._recheck.add(cid)
            self._wake.set()

    def _on_gap(self) -> None:
        """Announcements may have been lost: every follower re-reads the database."""
        for f in tuple(self._followed.values()):
            for conn, catchup in tuple(f.followers.items()):
                fetch = catchup.resync()
                if fetch is not None:
                    self._serve(f, conn, catchup, fetch)

    @staticmethod
    def _broadcast(f: _Followed, frame: str, *, skip_user: object = None) -> None:
        for conn in tuple(f.followers):
            if skip_user is not None and getattr(conn.principal, "user_id", None) == skip_user:
                continue
            try:
                conn.send_text(frame)
            except Exception:
                log.exception("sending to one socket failed; the others carry on")

    # --- serving ---------------------------------------------------------------

    def _serve(self, f: _Followed, conn: Connection, catchup: Catchup, fetch: Fetch | None) -> None:
        """Answer ``fetch`` from the cache while it can; queue the rest for the fetcher."""
        while fetch is not None:
            if conn.closing:
                return
            run = (self.cache.run(f.conversation_id, fetch.after, fetch.upto)
                   if fetch.upto is not None else None)
            if run is None:
                waiting = self._dirty.setdefault(f.conversation_id, {})
                waiting[conn] = fetch
                self._wake.set()
                return
            step = catchup.rows(run, complete=True)
            self._send(f, conn, catchup, step)
            fetch = step.fetch

    @staticmethod
    def _send(f: _Followed, conn: Connection, catchup: Catchup, step: Step) -> None:
        for item in step.send:
            if item.origin is not conn:
                conn.send_text(item.frame)
        if step.became_live:
            conn.send_text(_dumps({"type": "live", "conversation_id": f.conversation_id,
                                   "seq": catchup.delivered}))

    async def _fetch_forever(self) -> None:
        backoff = 0.0
        while True:
            if backoff:
                await asyncio.sleep(backoff)
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._fetch_round()
                backoff = 0.0
            except Exception as exc:  # the database may be briefly away: retry
                log.warning("chat relay: reading messages failed (%s); retrying", type(exc).__name__)
                backoff = min(max(backoff * 2, 0.1), 2.0)
                self._wake.set()

    async def _fetch_round(self) -> None:
        if self._recheck:
            async with self._factory() as db:
                while self._recheck:
                    cid = self._recheck.pop()
                    try:
                        await self._recheck_access(db, cid)
                    except Exception:
                        self._recheck.add(cid)
                        raise
        # What gets queued again while this round runs waits for the next round.
        dirty, self._dirty = self._dirty, {}
        ready: dict[int, dict[Connection, Fetch]] = {}
        for cid, waiting in dirty.items():
            f = self._followed.get(cid)
            if f is None:
                continue
            slow: dict[Connection, Fetch] = {}
            for conn, fetch in waiting.items():
                if conn in f.followers and not conn.closing:
                    if conn.backlog < PACE_BACKLOG:
                        ready.setdefault(cid, {})[conn] = fetch
                    else:
                        slow[conn] = fetch
            if slow:  # let a catching-up socket drain before its next page
                asyncio.get_running_loop().call_later(0.02, self._requeue, cid, slow)
        if not ready:
            return
        wanted = [(cid, min(fx.after for fx in waiting.values())) for cid, waiting in ready.items()]
        self.reads += 1
        try:
            pages = await self._reader.pages(wanted, self.page)
        except BaseException:
            for cid, waiting in ready.items():
                self._requeue(cid, waiting)
            raise
        for cid, waiting in ready.items():
            self._deliver_page(cid, waiting, [self._cached(cid, row) for row in pages.get(cid, [])])

    def _cached(self, conversation_id: int, row: MessageRow) -> Cached:
        mid, seq, sender_id, role, client_id, body, sent_at, attachments = row
        known = self.cache.get(conversation_id, seq)
        if known is not None:
            return known  # encoded already, and it knows the socket that sent it
        item = Cached(seq, message_frame(
            id=mid, conversation_id=conversation_id, seq=seq, sender_id=sender_id,
            sender_role=str(Role(role)), client_id=client_id, body=body, sent_at=sent_at,
            attachments=attachments))
        self.cache.put(conversation_id, item)
        return item

    def _deliver_page(self, cid: int, waiting: dict[Connection, Fetch], rows: list[Cached]) -> None:
        f = self._followed.get(cid)
        if f is None:
            return
        complete = len(rows) < self.page
        stuck: dict[Connection, Fetch] = {}
        for conn, fetch in waiting.items():
            catchup = f.followers.get(conn)
            if catchup is None:
                continue
            before = catchup.delivered
            step = catchup.rows([r for r in rows if r.seq > fetch.after], complete=complete)
            self._send(f, conn, catchup, step)
            if step.fetch is not None and catchup.delivered == before and fetch.upto is not None:
                stuck[conn] = step.fetch  # announced but not readable yet: try again shortly
                continue
            self._serve(f, conn, catchup, step.fetch)
        if stuck:
            asyncio.get_running_loop().call_later(0.05, self._requeue, cid, stuck)

    def _requeue(self, conversation_id: int, waiting: dict[Connection, Fetch]) -> None:
        f = self._followed.get(conversation_id)
        if f is None:
            return
        target = self._dirty.setdefault(conversation_id, {})
        for conn, fetch in waiting.items():
            if conn in f.followers:
                target.setdefault(conn, fetch)
        self._wake.set()

    async def _recheck_access(self, db: object, conversation_id: int) -> None:
        """The conversation was routed or closed: drop followers who lost access."""
        f = self._followed.get(conversation_id)
        if f is None:
            return
        access = await load_access(db, conversation_id)  # type: ignore[arg-type]
        for conn in tuple(f.followers):
            who = self.socket(conn).who
            if access is None or who is None or not may_access(who, access):
                self.unfollow(conn, conversation_id)
                conn.send_text(_dumps({"type": "unfollowed", "conversation_id": conversation_id}))

    async def _prune_forever(self, every: float = PRUNE_SECONDS) -> None:
        while True:
            await asyncio.sleep(every)
            self.prune()

    def prune(self) -> int:
        """Forget sockets that closed (in case the endpoint did not say so)."""
        gone = [conn for conn in self._sockets if conn.closing]
        for conn in gone:
            self.forget(conn)
        return len(gone)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("unsubscribing a conversation failed: %s", type(task.exception()).__name__)

