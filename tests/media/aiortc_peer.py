"""A visit participant that is aiortc instead of a browser, speaking the server's
signaling protocol (docs/visits.md) over ``/ws/v1/visit``: the tests' and the
benchmark's other side of a call.

It joins with a session cookie, builds its ``RTCPeerConnection`` from the ICE
servers and transport policy in the ``joined`` reply (the server's list: empty on
loopback, so aiortc never waits on a public STUN server), answers offers, adds
trickled candidates, and counts the video frames it decodes. With ``offer=True``
it offers to every peer it learns of (the benchmark's two aiortc sides: the one
whose id sorts higher offers, as the polite/impolite rule would have it).

aiortc does not trickle: its SDP carries every candidate, so it sends no ``ice``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp
from websockets.asyncio.client import ClientConnection, connect


class AiortcPeer:
    def __init__(self, base_ws: str, token: str, *, origin: str, offer: bool = False,
                 send_media: bool = True) -> None:
        self.url = f"{base_ws}/ws/v1/visit"
        self.token = token
        self.origin = origin
        self.offer_to_new = offer
        self.send_media = send_media
        self.ws: ClientConnection | None = None
        self.peer: str | None = None
        self.joined: dict[str, Any] = {}
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.frames = 0
        self.first_frame_at: float | None = None
        self.frame_seen = asyncio.Event()
        self.enough = asyncio.Event()
        self.want_frames = 30
        self.selected_relay: bool | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._joined = asyncio.Event()

    async def __aenter__(self) -> AiortcPeer:
        self.ws = await connect(self.url, origin=self.origin,  # type: ignore[arg-type]
                                additional_headers={"Cookie": f"rtc_session={self.token}"},
                                compression=None, max_size=2**20)
        assert json.loads(await self.ws.recv()) == {"type": "ready"}
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for pc in list(self.pcs.values()):
            await pc.close()
        self.pcs.clear()
        for task in list(self._tasks):
            task.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    async def join(self, visit_id: int) -> dict[str, Any]:
        await self.send({"type": "join", "visit": visit_id, "ref": "join"})
        await asyncio.wait_for(self._joined.wait(), 10)
        return self.joined

    # --- frames ------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self.ws is not None
        async for text in self.ws:
            frame = json.loads(text)
            kind = frame.get("type")
            if kind == "joined":
                self.joined = frame
                self.peer = frame["peer"]
                self._joined.set()
                if self.offer_to_new:
                    for other in frame["peers"]:
                        self._spawn(self._offer(other["peer"]))
            elif kind == "peer_joined" and self.offer_to_new:
                self._spawn(self._offer(frame["peer"]))
            elif kind == "offer":
                self._spawn(self._answer(frame["from"], frame["sdp"]))
            elif kind == "answer":
                pc = self.pcs.get(frame["from"])
                if pc is not None:
                    self._spawn(pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "answer")))
            elif kind == "ice":
                self._spawn(self._candidate(frame["from"], frame["candidate"]))
            elif kind == "bye" and frame["peer"] in self.pcs:
                self._spawn(self.pcs.pop(frame["peer"]).close())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _config(self) -> RTCConfiguration:
        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                   for s in self.joined.get("ice_servers", [])]
        policy = (RTCIceTransportPolicy.RELAY if self.joined.get("ice_transport_policy") == "relay"
                  else RTCIceTransportPolicy.ALL)
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)

    def _connection(self, peer: str) -> RTCPeerConnection:
        pc = self.pcs.get(peer)
        if pc is not None:
            return pc
        pc = self.pcs[peer] = RTCPeerConnection(self._config())

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "video":
                self._spawn(self._count(track))
        return pc

    def _add_media(self, pc: RTCPeerConnection) -> None:
        if self.send_media:
            pc.addTrack(VideoStreamTrack())
            pc.addTrack(AudioStreamTrack())
        else:
            pc.addTransceiver("video", direction="recvonly")

    async def _offer(self, peer: str) -> None:
        if peer in self.pcs:
            return
        pc = self._connection(peer)
        self._add_media(pc)
        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "offer", "to": peer, "sdp": pc.localDescription.sdp})

    async def _answer(self, peer: str, sdp: str) -> None:
        pc = self._connection(peer)
        fresh = not pc.getTransceivers()
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        if fresh and self.send_media:
            kinds = {t.kind for t in pc.getTransceivers()}
            if "video" in kinds:
                pc.addTrack(VideoStreamTrack())  # reuses the offered section: sendrecv
            if "audio" in kinds:
                pc.addTrack(AudioStreamTrack())
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send({"type": "answer", "to": peer, "sdp": pc.localDescription.sdp})

    async def _candidate(self, peer: str, candidate: dict[str, Any] | None) -> None:
        pc = self.pcs.get(peer)
        if pc is None or pc.remoteDescription is None:
            return
        if candidate is None or not candidate.get("candidate"):
            await pc.addIceCandidate(None)
            return
        parsed = candidate_from_sdp(candidate["candidate"].split(":", 1)[1])
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await pc.addIceCandidate(parsed)

    async def _count(self, track: Any) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self.frames += 1
            if self.first_frame_at is None:
                self.first_frame_at = time.perf_counter()
                self.frame_seen.set()
            if self.frames >= self.want_frames:
                self.enough.set()

    def relayed(self) -> bool:
        """Whether every connection's selected ICE pair goes through a TURN relay."""
        pairs = []
        for pc in self.pcs.values():
            for transceiver in pc.getTransceivers():
                ice = transceiver.receiver.transport.transport
                pair = ice._connection._nominated.get(1)  # aioice: the selected pair of component 1
                if pair is not None:
                    pairs.append(pair)
        return bool(pairs) and all(
            p.local_candidate.type == "relay" or p.remote_candidate.type == "relay" for p in pairs)
