"""The broker interface every implementation follows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

Event = dict[str, Any]


class BrokerUnavailable(Exception):
    """The broker (Redis) could not be reached; state in the database stands."""

#: Events buffered per subscription before the slowest consumer starts losing them.
QUEUE_LIMIT = 1000


class Subscription:
    """A set of channels and a bounded queue of ``(channel, event)`` pairs.

    A consumer too slow to keep up loses the oldest events (``dropped`` counts
    them) rather than holding memory without bound; it recovers from the
    database like any reconnecting client.
    """

    def __init__(self, channels: Iterable[str], on_close: Any = None) -> None:
        self.channels = set(channels)
        self.queue: asyncio.Queue[tuple[str, Event]] = asyncio.Queue(QUEUE_LIMIT)
        self.dropped = 0
        self.closed = False
        self._on_close = on_close

    def deliver(self, channel: str, event: Event) -> None:
        if self.closed:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait((channel, event))

    async def get(self) -> tuple[str, Event]:
        return await self.queue.get()

    async def __aiter__(self) -> AsyncIterator[tuple[str, Event]]:
        while not self.closed:
            yield await self.queue.get()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._on_close is not None:
                await self._on_close(self)


class Broker(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, channel: str, event: Event) -> None: ...

    async def subscribe(self, channels: Iterable[str]) -> Subscription: ...

    async def add_channels(self, sub: Subscription, channels: Iterable[str]) -> None: ...

    async def health(self) -> dict[str, Any]: ...
