"""The connection test of the device check: the server (aiortc) sends the caller's
video straight back; checks are limited in number per instance (over the limit:
429, try again shortly) and in length (the server ends them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

from rtc_server.auth.models import Role
from rtc_server.rooms.devicecheck import DeviceChecks
from tests.media.visit_helpers import api_client, person, visit_app


@pytest_asyncio.fixture
async def app(settings) -> AsyncIterator[object]:
    application = visit_app(settings)
    async with application.router.lifespan_context(application):
        yield application


class Echoed:
    """A browser stand-in: sends a video track, counts the frames that come back."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self.got = asyncio.Event()
        self.ended = asyncio.Event()
        self.pc.addTrack(VideoStreamTrack())
        self.counting: set[asyncio.Task[None]] = set()

        @self.pc.on("track")
        def on_track(track: object) -> None:
            task = asyncio.ensure_future(self._count(track))
            self.counting.add(task)
            task.add_done_callback(self.counting.discard)

    async def _count(self, track: object) -> None:
        while True:
            try:
                await track.recv()  # type: ignore[attr-defined]
            except MediaStreamError:
                self.ended.set()
                return
            self.frames += 1
            if self.frames >= 10:
                self.got.set()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))


async def test_the_server_echoes_the_video_back_and_ends_the_check_itself(
    app, session_factory, settings
) -> None:
    app.state.visits.checks = DeviceChecks(limit=2, seconds=3)
    patient = await person(session_factory, settings, "maria.lopez")
    client = Echoed()
    try:
        async with api_client(app, patient) as api:
            r = await api.post("/api/v1/visits/device-check/echo", json={"sdp": await client.offer()})
            assert r.status_code == 201, r.text
            assert r.json()["seconds"] == 3
            await client.answer(r.json()["sdp"])
        await asyncio.wait_for(client.got.wait(), 15)  # 10 frames came back
        assert app.state.visits.checks.running == 1
        await asyncio.wait_for(client.ended.wait(), 15)  # the server ended it after 3 s
        assert app.state.visits.checks.running == 0
    finally:
        await client.pc.close()


async def test_over_the_limit_the_caller_is_asked_to_try_again_shortly(
    app, session_factory, settings
) -> None:
    app.state.visits.checks = DeviceChecks(limit=1, seconds=30)
    patient = await person(session_factory, settings, "maria.lopez")
    other = await person(session_factory, settings, "jo.waiting", given="Jo", family="Waiting")
    staff = await person(session_factory, settings, "front.desk", role=Role.staff)
    first, second, third = Echoed(), Echoed(), Echoed()
    try:
        async with api_client(app, patient) as maria, api_client(app, other) as jo, \
                api_client(app, staff) as desk:
            r = await maria.post("/api/v1/visits/device-check/echo", json={"sdp": await first.offer()})
            assert r.status_code == 201
            check_id = r.json()["id"]
            busy = await jo.post("/api/v1/visits/device-check/echo", json={"sdp": await second.offer()})
            assert busy.status_code == 429
            assert "try again in a minute" in busy.json()["error"]["message"]
            # Only its owner ends a check; then the slot is free again.
            assert (await jo.delete(f"/api/v1/visits/device-check/echo/{check_id}")).status_code == 204
            assert app.state.visits.checks.running == 1
            assert (await maria.delete(f"/api/v1/visits/device-check/echo/{check_id}")).status_code == 204
            r = await jo.post("/api/v1/visits/device-check/echo", json={"sdp": await third.offer()})
            assert r.status_code == 201
            r = await desk.post("/api/v1/visits/device-check/echo", json={"sdp": await third.offer()})
            assert r.status_code == 403
            r = await maria.post("/api/v1/visits/device-check/echo", json={"sdp": "v=0\r\nnot sdp"})
            assert r.status_code == 422
    finally:
        for c in (first, second, third):
            await c.pc.close()
