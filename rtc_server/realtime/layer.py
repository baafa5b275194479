"""The real-time layer of one instance: socket slots, hub and sweeper.

Built in the lifespan (``app.state.realtime``), started after the broker and
closed before it. Endpoints (``realtime.Endpoint``) find it on the app.
"""

from __future__ import annotations

from rtc_server.broker.base import Broker, Event
from rtc_server.config import Settings
from rtc_server.db import SessionFactory
from rtc_server.notify.events import SESSION_CHECK
from rtc_server.realtime.admission import SocketLimits, session_liveness
from rtc_server.realtime.connection import OUTBOX_FRAMES, Connection
from rtc_server.realtime.hub import Hub
from rtc_server.realtime.sweeper import Sweeper


class RealtimeLayer:
    def __init__(self, settings: Settings, broker: Broker, session_factory: SessionFactory) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.limits = SocketLimits(settings.ws_max_per_user, settings.ws_max_total)
        self.outbox_limit = OUTBOX_FRAMES
        self.sweeper = Sweeper(session_liveness(session_factory, settings),
                               interval=settings.ws_recheck_seconds)
        self.hub = Hub(broker, controls={SESSION_CHECK: self._session_check})

    async def start(self) -> None:
        await self.hub.start()
        self.sweeper.start()

    async def close(self) -> None:
        await self.sweeper.close()
        await self.hub.close()

    def _session_check(self, channel: str, event: Event, conns: frozenset[Connection]) -> None:
        self.sweeper.check_soon(conns)
