"""The guest sockets of one instance, closed when their guest session stops
standing (``rooms.guests.live_sessions``): the visit ended, the guest left or
was removed, the provider revoked their link, or the session's time ran out.

A guest session is no ``auth_session``, so the real-time layer's sweeper does
not know it; this is a second ``realtime.Sweeper`` with the guests' own
liveness check (one batched query per tick, ``ws_recheck_seconds``). It also
listens on ``room:<visit>`` for each visit with a local guest socket: a
``visit.participant`` or ``visit.ended`` event has it check that visit's guest
sockets at once, so a removed guest's socket closes within moments, not at
the next tick. Closing sends ``{"type":"session_ended"}``, then 4401.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from rtc_server.broker.base import Broker, Subscription
from rtc_server.db import SessionFactory, utcnow
from rtc_server.notify.events import room_channel
from rtc_server.realtime.connection import Connection
from rtc_server.realtime.sweeper import Sweeper
from rtc_server.rooms import guests
from rtc_server.rooms.events import ENDED, PARTICIPANT

log = logging.getLogger("rtc_server.signaling")

_CHECK_ON = frozenset({PARTICIPANT, ENDED})


class GuestSockets:
    def __init__(self, broker: Broker, session_factory: SessionFactory, *, interval: float) -> None:
        self._broker = broker
        self._factory = session_factory
        self.sweeper = Sweeper(self._live, interval=interval)
        self._sub: Subscription | None = None
        self._by_visit: dict[int, set[Connection]] = {}

    async def start(self) -> None:
        self._sub = await self._broker.subscribe((), self._on_message, self._on_gap)
        self.sweeper.start()

    async def close(self) -> None:
        await self.sweeper.close()
        if self._sub is not None:
            await self._sub.close()
        self._by_visit.clear()

    async def _live(self, session_ids: list[str]) -> set[str]:
        async with self._factory() as db:
            return await guests.live_sessions(db, session_ids, utcnow())

    async def add(self, conn: Connection, visit_id: int) -> None:
        """Watch ``conn``, a guest's socket for ``visit_id``; BrokerUnavailable if the
        visit's events cannot be followed (the caller then closes it)."""
        assert self._sub is not None, "guest sockets not started"
        conns = self._by_visit.setdefault(visit_id, set())
        conns.add(conn)
        self.sweeper.add(conn, conn.principal.session_id)
        if len(conns) == 1:
            try:
                await self._sub.add(room_channel(visit_id))
            except BaseException:
                self.discard(conn, visit_id)
                raise
        # The session may have ended between admission and now: look once more.
        self.sweeper.check_soon([conn])

    def discard(self, conn: Connection, visit_id: int) -> None:
        self.sweeper.discard(conn, conn.principal.session_id)
        conns = self._by_visit.get(visit_id)
        if conns is None:
            return
        conns.discard(conn)
        if not conns:
            del self._by_visit[visit_id]
            if self._sub is not None and not self._sub.closed:
                task = asyncio.ensure_future(self._sub.discard(room_channel(visit_id)))
                task.add_done_callback(_log_failure)

    def _on_message(self, channel: str, data: str) -> None:
        if not channel.startswith("room:"):
            return
        conns = self._by_visit.get(int(channel[5:]))
        if not conns:
            return
        try:
            kind = json.loads(data).get("kind")
        except (ValueError, AttributeError):
            return
        if kind in _CHECK_ON:
            self.sweeper.check_soon(conns)

    def _on_gap(self) -> None:
        """Events may have been missed: check every guest socket now."""
        for conns in self._by_visit.values():
            self.sweeper.check_soon(conns)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("guest sockets: unsubscribing failed", exc_info=task.exception())
