"""In-process broker: the embedded default for a single instance."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from rtc_server.broker.base import Event, Subscription


class MemoryBroker:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.closed = True
        self._subs.clear()

    async def publish(self, channel: str, event: Event) -> None:
        for sub in tuple(self._subs.get(channel, ())):
            sub.deliver(channel, event)

    async def subscribe(self, channels: Iterable[str]) -> Subscription:
        sub = Subscription((), on_close=self._remove)
        await self.add_channels(sub, channels)
        return sub

    async def add_channels(self, sub: Subscription, channels: Iterable[str]) -> None:
        for ch in channels:
            sub.channels.add(ch)
            self._subs[ch].add(sub)

    async def _remove(self, sub: Subscription) -> None:
        for ch in sub.channels:
            subs = self._subs.get(ch)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[ch]

    async def health(self) -> dict[str, Any]:
        return {"kind": "memory", "ok": True, "channels": len(self._subs)}
