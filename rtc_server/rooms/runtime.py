"""Virtual visits' per-instance machinery, built in the lifespan and kept on
``app.state.visits``: the signaling relay, the guest sockets' sweeper, the ICE
configuration and the device-check limiter. In ``app.py``'s lifespan, after the real-time layer has
started::

    app.state.visits = await start_visits(app.state.deps)
    ...
    await app.state.visits.close()        # before the real-time layer closes

Until those lines exist, ``visits_of(app)`` builds it on first use (and
nothing closes it; the broker's own close ends its subscription).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rtc_server.deps import Deps
from rtc_server.rooms.devicecheck import DeviceChecks
from rtc_server.rooms.turn import IceConfig
from rtc_server.signaling.guests import GuestSockets
from rtc_server.signaling.relay import SignalRelay

log = logging.getLogger("rtc_server.visits")


class VisitRuntime:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.relay = SignalRelay(deps.broker, deps.session_factory)
        self.guests = GuestSockets(deps.broker, deps.session_factory,
                                   interval=deps.settings.ws_recheck_seconds)
        self.ice = IceConfig.from_settings(deps.settings)
        if self.ice.relay_only and not (self.ice.turn_urls and self.ice.turn_secret):
            log.warning("ice_relay_only is set without turn_urls and turn_secret: "
                        "no video visit can connect")
        self.checks = DeviceChecks.from_settings(deps.settings)
        #: The signaling peer of each socket in a call (keyed by its connection).
        self.peer_of: dict[Any, str] = {}

    async def start(self) -> None:
        await self.relay.start()
        await self.guests.start()

    async def close(self) -> None:
        await self.checks.close()
        await self.guests.close()
        await self.relay.close()


async def start_visits(deps: Deps) -> VisitRuntime:
    runtime = VisitRuntime(deps)
    await runtime.start()
    return runtime


async def visits_of(app: Any) -> VisitRuntime:
    """``app.state.visits``, built and started on first use if the lifespan did not."""
    state = app.state
    runtime = getattr(state, "visits", None)
    if isinstance(runtime, VisitRuntime):
        return runtime
    starting = getattr(state, "visits_starting", None)
    if starting is None:
        starting = state.visits_starting = asyncio.ensure_future(start_visits(state.deps))
    runtime = await asyncio.shield(starting)
    state.visits = runtime
    return runtime
