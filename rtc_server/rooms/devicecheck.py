"""The connection test of the device check: the browser sends audio and video
to the server and aiortc sends the same tracks straight back, so the page can
measure the round trip (time, loss, bitrate) and show the person themselves.

aiortc is not an SFU: what it returns it decodes and re-encodes, which costs
a core's worth of CPU per few checks. So checks are limited in number per
instance (``device_check_max``, default 3) and in length
(``device_check_seconds``, default 45); over the limit ``start`` raises
``Busy`` and the page says to try again shortly. Nothing here imports HTTP or
WebSocket code; media never reaches the disk or the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("rtc_server.devicecheck")

DEFAULT_MAX = 3
DEFAULT_SECONDS = 45.0


class Busy(Exception):
    """Every device-check slot of this instance is taken."""


@dataclass
class _Check:
    pc: Any
    owner: int
    timer: asyncio.TimerHandle | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class DeviceChecks:
    """At most ``limit`` loopback echoes at once, each at most ``seconds`` long."""

    def __init__(self, *, limit: int = DEFAULT_MAX, seconds: float = DEFAULT_SECONDS) -> None:
        self.limit = limit
        self.seconds = seconds
        self._running: dict[int, _Check] = {}
        self._next = 0
        #: Checks started since start-up (metrics).
        self.started = 0

    @classmethod
    def from_settings(cls, settings: Any) -> DeviceChecks:
        return cls(limit=int(getattr(settings, "device_check_max", DEFAULT_MAX)),
                   seconds=float(getattr(settings, "device_check_seconds", DEFAULT_SECONDS)))

    @property
    def running(self) -> int:
        return len(self._running)

    async def start(self, offer_sdp: str, ice_servers: list[dict[str, Any]], *,
                    owner: int) -> tuple[int, str]:
        """Answer the browser's offer with an echo of its tracks; the check's id
        and the answer SDP (with every candidate: aiortc does not trickle)."""
        if len(self._running) >= self.limit:
            raise Busy()
        from aiortc import (
            RTCConfiguration,
            RTCIceServer,
            RTCPeerConnection,
            RTCSessionDescription,
        )
        from aiortc.contrib.media import MediaRelay

        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"),
                                credential=s.get("credential")) for s in ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._next += 1
        check_id = self._next
        check = self._running[check_id] = _Check(pc, owner)
        self.started += 1
        relay = MediaRelay()

        @pc.on("track")
        def on_track(track: Any) -> None:
            pc.addTrack(relay.subscribe(track))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.stop(check_id)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            # Send back what arrives: every offered media section answers sendrecv.
            for transceiver in pc.getTransceivers():
                if transceiver.direction == "recvonly":
                    transceiver.direction = "sendrecv"
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self.stop(check_id)
            raise
        loop = asyncio.get_running_loop()
        check.timer = loop.call_later(self.seconds, lambda: asyncio.ensure_future(self.stop(check_id)))
        return check_id, pc.localDescription.sdp

    async def stop(self, check_id: int, *, owner: int | None = None) -> None:
        """End a check (only its owner's, when ``owner`` is given)."""
        check = self._running.get(check_id)
        if check is None or (owner is not None and check.owner != owner):
            return
        del self._running[check_id]
        if check.timer is not None:
            check.timer.cancel()
        with contextlib.suppress(Exception):
            await check.pc.close()
        check.done.set()

    async def close(self) -> None:
        for check_id in list(self._running):
            await self.stop(check_id)
