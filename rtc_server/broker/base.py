"""The broker interface every implementation follows, and the channel
bookkeeping they share.

A consumer subscribes with a *listener*, ``on_message(channel, data)``, where
``data`` is the event's JSON text exactly as the publisher encoded it (so a
fan-out can embed it in its own frame without decoding and re-encoding). The
broker calls listeners synchronously from wherever the message arrives (the
publisher's task for the in-process broker, the reader task for Redis): a
listener must not block and cannot await. It hands the message on (the
real-time hub writes it to sockets' outboxes) and returns.

Delivery is at-most-once. When a broker had to reconnect it cannot know what
was published meanwhile, so after it is subscribed again it calls each
subscription's ``on_gap()``: the consumer tells its clients to catch up from
the database. ``healthy`` is False while the broker is cut off.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

Event = dict[str, Any]
#: ``on_message(channel, data)``: ``data`` is the event's JSON text.
Listener = Callable[[str, str], None]

log = logging.getLogger("rtc_server.broker")


class BrokerUnavailable(Exception):
    """The broker (Redis) could not be reached; state in the database stands."""


def encode(event: Event) -> str:
    """The one JSON encoding of an event, done once by the publisher."""
    return json.dumps(event, separators=(",", ":"))


class Subscription:
    """One consumer's channels on a broker.

    ``add`` returns once the broker has confirmed the subscription, so a
    message published after it returns is delivered: no sleeps. A listener
    that raises is logged and the message still goes to everyone else.
    """

    __slots__ = ("_broker", "channels", "closed", "on_gap", "on_message")

    def __init__(self, broker: SharedChannels, on_message: Listener,
                 on_gap: Callable[[], None] | None = None) -> None:
        self._broker = broker
        self.on_message = on_message
        self.on_gap = on_gap
        self.channels: set[str] = set()
        self.closed = False

    async def add(self, *channels: str) -> None:
        """Listen on ``channels`` too; BrokerUnavailable if that cannot be confirmed."""
        await self._broker.add_channels(self, channels)

    async def discard(self, *channels: str) -> None:
        await self._broker.remove_channels(self, channels)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._broker.remove_channels(self, tuple(self.channels))


class Inbox:
    """A queue-backed listener for scripts and tests::

        inbox = Inbox()
        sub = await broker.subscribe(["user:7"], inbox.put, inbox.gap)
        channel, event = await inbox.get()
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Event]] = asyncio.Queue()
        self.gaps = 0

    def put(self, channel: str, data: str) -> None:
        self.queue.put_nowait((channel, json.loads(data)))

    def gap(self) -> None:
        self.gaps += 1

    async def get(self) -> tuple[str, Event]:
        return await self.queue.get()


class Broker(Protocol):
    kind: str

    @property
    def healthy(self) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, channel: str, event: Event) -> None: ...

    async def subscribe(self, channels: Iterable[str], on_message: Listener,
                        on_gap: Callable[[], None] | None = None) -> Subscription: ...

    async def health(self) -> dict[str, Any]: ...


class SharedChannels:
    """Channel → local subscriptions, so each channel is subscribed at the
    broker once per instance however many consumers share it. Implementations
    provide ``_listen``/``_unlisten`` (the first consumer of a channel arrives,
    the last one leaves); both run under one lock, in call order."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._lock = asyncio.Lock()

    async def subscribe(self, channels: Iterable[str], on_message: Listener,
                        on_gap: Callable[[], None] | None = None) -> Subscription:
        sub = Subscription(self, on_message, on_gap)
        await self.add_channels(sub, channels)
        return sub

    async def add_channels(self, sub: Subscription, channels: Iterable[str]) -> None:
        async with self._lock:
            new = [ch for ch in dict.fromkeys(channels) if ch not in sub.channels]
            first = [ch for ch in new if not self._subs.get(ch)]
            for ch in new:
                sub.channels.add(ch)
                self._subs[ch].add(sub)
            if not first:
                return
            try:
                await self._listen(first)
            except BrokerUnavailable:
                # Undo, or the channel would look subscribed for ever.
                for ch in new:
                    sub.channels.discard(ch)
                    self._drop(ch, sub)
                raise

    async def remove_channels(self, sub: Subscription, channels: Iterable[str]) -> None:
        async with self._lock:
            last = []
            for ch in tuple(channels):
                sub.channels.discard(ch)
                if self._drop(ch, sub):
                    last.append(ch)
            if last:
                await self._unlisten(last)

    def _drop(self, channel: str, sub: Subscription) -> bool:
        """Forget ``sub`` on ``channel``; True when nobody here listens any more."""
        subs = self._subs.get(channel)
        if subs is None:
            return False
        subs.discard(sub)
        if subs:
            return False
        del self._subs[channel]
        return True

    def _deliver(self, channel: str, data: str) -> None:
        for sub in tuple(self._subs.get(channel, ())):
            try:
                sub.on_message(channel, data)
            except Exception:
                log.exception("a broker listener failed on a %s message", channel.split(":", 1)[0])

    def _gap(self) -> None:
        subs = {sub for group in self._subs.values() for sub in group}
        for sub in subs:
            if sub.on_gap is not None:
                try:
                    sub.on_gap()
                except Exception:
                    log.exception("a broker gap listener failed")

    async def _listen(self, channels: list[str]) -> None:
        raise NotImplementedError

    async def _unlisten(self, channels: list[str]) -> None:
        raise NotImplementedError
