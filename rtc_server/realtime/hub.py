"""The per-instance fan-out: channel → the local connections listening on it.

One broker subscription per instance, holding each channel once however many
local connections share it. An event arrives as JSON text (encoded once by
its publisher); the hub wraps it into one frame, numbered per channel, and
hands that same string to every connection of the channel without awaiting
any of them (websockets' ``broadcast()`` pattern). A connection that fails is
logged and skipped; a slow one closes itself (``Connection.send_text``).

Gaps are never silent. When the broker had to reconnect (events may have been
published meanwhile), every connection gets ``{"type":"resync","channel":…}``
for each of its channels, once the broker is subscribed again, so the client
refetches from the API and misses nothing after that.

Control events (``{"kind": "session_check"}``) are consumed here and handed
to their handler with the channel's connections; they are never forwarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable

from rtc_server.broker.base import Broker, Event, Subscription
from rtc_server.realtime.connection import Connection

log = logging.getLogger("rtc_server.realtime")

#: ``handler(channel, event, connections)`` for a control event.
ControlHandler = Callable[[str, Event, frozenset[Connection]], None]


class _Channel:
    __slots__ = ("members", "name_json", "ready", "seq")

    def __init__(self, name: str, subscribing: asyncio.Future[None]) -> None:
        self.members: set[Connection] = set()
        self.name_json = json.dumps(name)
        self.seq = 0
        #: The broker subscription until it is confirmed; None after (nothing kept per channel).
        self.ready: asyncio.Future[None] | None = subscribing
        subscribing.add_done_callback(self._subscribed)

    def _subscribed(self, fut: asyncio.Future[None]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self.ready = None


class Hub:
    """Built once per instance (``RealtimeLayer``); ``start`` before use."""

    def __init__(self, broker: Broker, *, controls: dict[str, ControlHandler] | None = None) -> None:
        self._broker = broker
        self._controls = dict(controls or {})
        # Only events that may be controls are decoded: a cheap substring test first.
        self._control_marks = tuple(f'"{kind}"' for kind in self._controls)
        self._channels: dict[str, _Channel] = {}
        self._sub: Subscription | None = None
        #: Frames built for delivery, one per event however many sockets get it.
        self.frames_built = 0

    async def start(self) -> None:
        self._sub = await self._broker.subscribe((), self._on_message, self._on_gap)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.close()
        self._channels.clear()

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def members(self, channel: str) -> frozenset[Connection]:
        ch = self._channels.get(channel)
        return frozenset(ch.members) if ch is not None else frozenset()

    async def join(self, conn: Connection, channel: str) -> None:
        """Deliver ``channel``'s events to ``conn`` from now on. Returns once the
        broker confirmed the channel (BrokerUnavailable if it cannot)."""
        assert self._sub is not None, "hub not started"
        ch = self._channels.get(channel)
        if ch is None:
            ch = self._channels[channel] = _Channel(
                channel, asyncio.ensure_future(self._sub.add(channel)))
        ch.members.add(conn)
        conn.channels.add(channel)
        if ch.ready is None:
            return
        try:
            await asyncio.shield(ch.ready)
        except BaseException:
            self._leave_channel(conn, channel)
            raise

    def leave(self, conn: Connection, channels: Iterable[str] | None = None) -> None:
        """Stop delivering to ``conn`` (all its channels by default). The broker
        unsubscribes a channel in the background once no local connection is left."""
        for channel in tuple(conn.channels if channels is None else channels):
            self._leave_channel(conn, channel)

    def _leave_channel(self, conn: Connection, channel: str) -> None:
        conn.channels.discard(channel)
        ch = self._channels.get(channel)
        if ch is None:
            return
        ch.members.discard(conn)
        if ch.members:
            return
        del self._channels[channel]
        if self._sub is not None and not self._sub.closed:
            task = asyncio.ensure_future(self._unsubscribe(ch, channel))
            task.add_done_callback(_log_failure)

    async def _unsubscribe(self, ch: _Channel, channel: str) -> None:
        if ch.ready is not None:
            try:
                await ch.ready
            except Exception:
                return  # never subscribed
        if channel not in self._channels and self._sub is not None:
            await self._sub.discard(channel)

    def _on_message(self, channel: str, data: str) -> None:
        ch = self._channels.get(channel)
        if ch is None:
            return
        if self._control_marks and any(mark in data for mark in self._control_marks):
            event = json.loads(data)
            handler = self._controls.get(event.get("kind")) if isinstance(event, dict) else None
            if handler is not None:
                handler(channel, event, frozenset(ch.members))
                return
        ch.seq += 1
        frame = f'{{"type":"event","channel":{ch.name_json},"seq":{ch.seq},"event":{data}}}'
        self.frames_built += 1
        self._send(ch.members, frame)

    def _on_gap(self) -> None:
        for ch in list(self._channels.values()):
            self._send(ch.members, f'{{"type":"resync","channel":{ch.name_json}}}')

    @staticmethod
    def _send(members: set[Connection], frame: str) -> None:
        for conn in tuple(members):
            try:
                conn.send_text(frame)
            except Exception:
                log.exception("sending to one socket failed; the others carry on")


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("unsubscribing a channel failed: %s", type(task.exception()).__name__)
