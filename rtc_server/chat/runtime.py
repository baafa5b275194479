"""Messaging's per-instance machinery, built in the lifespan and kept on
``app.state.chat``: the group-commit writer, the live relay, the per-person
send rate and the coalesced unread notices.

In ``app.py``'s lifespan, after the real-time layer has started::

    app.state.chat = await start_chat(app.state.deps, app.state.realtime)
    ...
    await app.state.chat.close()        # before the real-time layer closes

After each committed batch (``_after_store``): the messages are delivered to
this instance's sockets at once (so local members keep chatting while Redis
is away), then announced, ids and sequences only: ``chat.message`` on
``conv:<id>`` for the other instances' followers, and ``chat.unread`` on
``user:<id>`` for every other member's pages (tab badges, dashboard,
console), at most once per person and conversation per
``unread_notice_seconds`` with the latest sequence always following, and
not to a person whose every open socket follows the conversation (single
instance: the message itself is their notice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rtc_server.broker.base import BrokerUnavailable, Event
from rtc_server.chat.filelinks import sweep_unused, unused_cutoff
from rtc_server.chat.files import AttachmentFiles
from rtc_server.chat.notices import Coalescer
from rtc_server.chat.relay import KIND_MESSAGE, Cached, ChatRelay, message_frame
from rtc_server.chat.stores import open_reader, open_store
from rtc_server.chat.writer import GroupWriter, Stored, checkpoint_forever
from rtc_server.config import Settings
from rtc_server.deps import Deps
from rtc_server.errors import RateLimited
from rtc_server.jobs.digest import Digests
from rtc_server.jobs.presence import PresenceBoard
from rtc_server.notify.events import conversation_channel, user_channel
from rtc_server.realtime import Hub, RealtimeLayer
from rtc_server.realtime.ratelimit import TokenBucket

log = logging.getLogger("rtc_server.chat")

KIND_UNREAD = "chat.unread"
#: Per-person buckets kept before idle (full) ones are dropped.
_BUCKETS_KEPT = 10_000
#: (conversation, user) pairs remembered as having a member row.
_MEMBERS_KEPT = 100_000


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """Messaging's tunables (``RTC_CHAT_*`` in ``config.Settings``); tests swap
    them on a running app (``app.state.chat.limits = ChatLimits(...)``)."""

    messages_per_second: float = 2.0
    burst: float = 20.0
    follows_per_socket: int = 20
    unread_notice_seconds: float = 1.0
    reply_time: str = "within 2 business days"
    emergency_number: str = "911"

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatLimits:
        return cls(messages_per_second=settings.chat_messages_per_second, burst=settings.chat_burst,
                   follows_per_socket=settings.chat_follows_per_socket,
                   unread_notice_seconds=settings.chat_unread_notice_seconds,
                   reply_time=settings.chat_reply_time, emergency_number=settings.chat_emergency_number)


class ChatRuntime:
    def __init__(self, deps: Deps, limits: ChatLimits | None = None, *, hub: Hub | None = None) -> None:
        self.deps = deps
        self._hub = hub
        url = deps.settings.database_url_effective
        self.relay = ChatRelay(deps.broker, deps.session_factory, open_reader(url))
        self.writer = GroupWriter(open_store(url),
                                  after=self._after_store, clock=deps.clock)
        self._limits = limits or ChatLimits.from_settings(deps.settings)
        self._buckets: dict[int, TokenBucket] = {}
        self._notices: Coalescer[tuple[int, int]] = Coalescer(self._limits.unread_notice_seconds)
        self._notice_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: (conversation, user) pairs known to have a member row (skips an upsert).
        self.members_known: set[tuple[int, int]] = set()
        #: Attachment files (``data_dir/attachments``).
        self.files = AttachmentFiles(deps.settings.data_dir / "attachments",
                                     min_free_bytes=deps.settings.chat_attachment_min_free_bytes)
        #: Uploads in progress here, per person (``upload_slot``).
        self._uploading: dict[int, int] = {}
        #: Who has a page open here (mirrored to the database), and the batched
        #: email/SMS notices for those who have none anywhere.
        self.presence = PresenceBoard(deps.session_factory, clock=deps.clock,
                                      heartbeat=deps.settings.presence_heartbeat_seconds)
        self.digests = Digests(deps.session_factory, deps.settings, self.presence, clock=deps.clock)
        #: The in-process broker: this instance is the only one.
        self._alone = deps.broker.kind == "memory"

    @property
    def limits(self) -> ChatLimits:
        return self._limits

    @limits.setter
    def limits(self, value: ChatLimits) -> None:
        self._limits = value
        self._buckets.clear()
        self._notices.window = value.unread_notice_seconds

    async def start(self) -> None:
        await self.relay.start()
        self.writer.start()
        self.presence.start()
        self.digests.start()
        self._tasks = [asyncio.create_task(self._notices_forever(), name="chat-notices"),
                       asyncio.create_task(self._sweep_forever(), name="chat-sweep-uploads")]
        if self.deps.session_factory.kw["bind"].dialect.name == "sqlite":
            self._tasks.append(asyncio.create_task(
                checkpoint_forever(self.deps.session_factory), name="chat-sqlite-checkpoints"))

    async def close(self) -> None:
        await self.writer.close()
        await self.digests.close()
        await self.presence.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.relay.close()

    # --- limits ----------------------------------------------------------------

    @contextlib.contextmanager
    def upload_slot(self, user_id: int) -> Iterator[None]:
        """Hold one of ``user_id``'s ``chat_uploads_in_flight`` upload slots on this
        instance while a body is received; 429 ``too_many_uploads`` when all are taken."""
        held = self._uploading.get(user_id, 0)
        if held >= self.deps.settings.chat_uploads_in_flight:
            busy = RateLimited("Wait for your other files to finish uploading.", retry_after=2)
            busy.code = "too_many_uploads"
            raise busy
        self._uploading[user_id] = held + 1
        try:
            yield
        finally:
            left = self._uploading[user_id] - 1
            if left:
                self._uploading[user_id] = left
            else:
                del self._uploading[user_id]

    def allow_message(self, user_id: int) -> bool:
        """Spend one of ``user_id``'s message tokens on this instance."""
        now = asyncio.get_running_loop().time()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            if len(self._buckets) >= _BUCKETS_KEPT:
                self._drop_idle_buckets(now)
            bucket = self._buckets[user_id] = TokenBucket(
                self._limits.messages_per_second, self._limits.burst, now=now)
        return bucket.take(now)

    def _drop_idle_buckets(self, now: float) -> None:
        for user_id, bucket in list(self._buckets.items()):
            bucket.take(now, 0.0)  # refill to now
            if bucket.tokens >= bucket.burst:
                del self._buckets[user_id]

    def remember_member(self, conversation_id: int, user_id: int) -> None:
        if len(self.members_known) >= _MEMBERS_KEPT:
            self.members_known.clear()
        self.members_known.add((conversation_id, user_id))

    # --- after a batch is stored -------------------------------------------------

    async def stored_directly(self, stored: Stored, members: list[int]) -> None:
        """A message committed outside the writer (one carrying attachments:
        ``chat.attachments``): deliver and announce it as a batch would be."""
        await self._after_store([stored], {stored.conversation_id: members})

    async def _after_store(self, created: list[Stored], members: dict[int, list[int]]) -> None:
        last: dict[int, int] = {}
        senders: dict[int, list[tuple[int, int]]] = {}
        for s in created:
            self.relay.stored(s.conversation_id, Cached(s.seq, message_frame(
                id=s.id, conversation_id=s.conversation_id, seq=s.seq, sender_id=s.sender_id,
                sender_role=s.sender_role, client_id=s.client_id, body=s.body, sent_at=s.sent_at,
                attachments=s.attachments,
            ), s.origin))
            last[s.conversation_id] = max(last.get(s.conversation_id, 0), s.seq)
            senders.setdefault(s.conversation_id, []).append((s.seq, s.sender_id))
        # For the other instances' followers; with the in-process broker there are none.
        events: list[tuple[str, Event]] = [] if self._alone else [
            (conversation_channel(cid), {"kind": KIND_MESSAGE, "conversation_id": cid, "seq": seq})
            for cid, seq in last.items()
        ]
        now = asyncio.get_running_loop().time()
        held = False
        waiting: set[int] = set()
        for cid, user_ids in members.items():
            sent = senders.get(cid, ())
            for user_id in user_ids:
                seq = max((q for q, sender in sent if sender != user_id), default=0)
                if seq:
                    waiting.add(user_id)
                if not seq or self._watching(user_id, cid):
                    continue
                if self._notices.offer((user_id, cid), seq, now):
                    events.append((user_channel(user_id), _unread(cid, seq)))
                else:
                    held = True
        if held:
            self._notice_wake.set()
        if waiting:
            self.digests.offer(waiting, min(s.sent_at for s in created))
        if events:
            await self.publish(events)

    def _watching(self, user_id: int, conversation_id: int) -> bool:
        """Every socket this person has open follows the conversation, and there
        is no other instance where they could have one that does not: the
        message itself is their notice (their page sends ``read``)."""
        if not self._alone or self._hub is None:
            return False
        sockets = self._hub.members(user_channel(user_id))
        return bool(sockets) and all(self.relay.follows(c, conversation_id) for c in sockets)

    async def publish(self, events: Iterable[tuple[str, Event]]) -> None:
        """Publish ``events`` (concurrently to Redis; the in-process broker
        delivers at once, no task needed); a broker outage is logged once, not
        raised (the messages are stored; clients catch up from the database)."""
        broker = self.deps.broker
        if self._alone:
            for channel, event in events:
                await broker.publish(channel, event)
            return
        many = getattr(broker, "publish_many", None)
        if many is not None:  # one round trip for the lot (a Redis pipeline)
            try:
                await many(list(events))
            except BrokerUnavailable:
                log.warning("chat: announcements not published (broker unavailable); "
                            "clients catch up from the database")
            return
        results = await asyncio.gather(*(broker.publish(channel, event) for channel, event in events),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            unexpected = [r for r in failures if not isinstance(r, BrokerUnavailable)]
            if unexpected:
                log.error("chat: publishing failed", exc_info=unexpected[0])
            else:
                log.warning("chat: %d announcement(s) not published (broker unavailable); "
                            "clients catch up from the database", len(failures))

    async def _notices_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due_at = self._notices.next_due()
            timeout = None if due_at is None else max(0.0, due_at - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._notice_wake.wait(), timeout)
            self._notice_wake.clear()
            due = self._notices.due(loop.time())
            if due:
                await self.publish([(user_channel(user_id), _unread(cid, seq))
                                    for (user_id, cid), seq in due])


    async def _sweep_forever(self) -> None:
        """Delete uploads no message took within ``chat_attachment_unused_hours``
        (any instance may; the delete decides which rows are gone)."""
        hours = self.deps.settings.chat_attachment_unused_hours
        every = min(3600.0, max(1.0, hours * 3600 / 4))
        while True:
            await asyncio.sleep(every)
            try:
                async with self.deps.session_factory() as db:
                    await sweep_unused(db, self.files,
                                       older_than=unused_cutoff(self.deps.clock(), hours))
            except Exception as exc:  # the next round tries again
                log.warning("chat: sweeping unused uploads failed (%s)", type(exc).__name__)


def _unread(conversation_id: int, seq: int) -> Event:
    return {"kind": KIND_UNREAD, "conversation_id": conversation_id, "seq": seq}


async def start_chat(deps: Deps, realtime: RealtimeLayer | None = None,
                     limits: ChatLimits | None = None) -> ChatRuntime:
    """Build and start this instance's messaging machinery (see the module docstring)."""
    runtime = ChatRuntime(deps, limits, hub=realtime.hub if realtime is not None else None)
    await runtime.start()
    return runtime
