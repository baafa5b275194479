"""In-process broker: the embedded default for a single instance.

``publish`` encodes the event once and hands it to the listeners before it
returns; nothing is queued here, so nothing can be lost here either.
"""

from __future__ import annotations

from typing import Any

from rtc_server.broker.base import Event, SharedChannels, encode


class MemoryBroker(SharedChannels):
    kind = "memory"

    @property
    def healthy(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for subs in list(self._subs.values()):
            for sub in subs:
                sub.closed = True
        self._subs.clear()

    async def publish(self, channel: str, event: Event) -> None:
        if channel in self._subs:
            self._deliver(channel, encode(event))

    async def _listen(self, channels: list[str]) -> None:
        return None

    async def _unlisten(self, channels: list[str]) -> None:
        return None

    async def health(self) -> dict[str, Any]:
        return {"kind": self.kind, "ok": True}
