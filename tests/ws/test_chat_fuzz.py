"""Generated frames thrown at the messaging socket (hypothesis): whatever
arrives, the socket answers with a documented frame or closes with a
documented code, a ping after it is answered while it is open, and the only
messages stored are the ones that were acknowledged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rtc_server.app import create_app
from rtc_server.config import Settings
from tests.api.test_chat_support import ROOMY, make_clinic, start, stored_messages
from tests.ws.helpers import ORIGIN, Served, recv_json, serving

#: What the server may answer a client frame with, and the codes it may close with.
ANSWERS = {"ack", "error", "message", "live", "typing", "read", "delivered", "pong", "event",
           "conversation", "unfollowed"}
CLOSE_CODES = {1003, 1008, 1009}

TYPES = ["send", "resume", "leave", "read", "delivered", "typing", "ping", "shout", ""]
IDS = st.one_of(st.integers(min_value=-3, max_value=2**64), st.text(max_size=5), st.none(), st.floats())
TEXT = st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.integers(), max_size=3))
FIELDS = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={"conversation_id": IDS, "since": IDS, "seq": IDS, "client_id": TEXT, "body": TEXT,
              "ref": TEXT, "extra": TEXT},
)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: (st.lists(inner, max_size=3)
                                   | st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                    max_leaves=10)
FRAMES = st.one_of(
    FIELDS.map(json.dumps),
    JSON.map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=20),
)


class Probe:
    """One socket kept across examples (reopened after a close), and what it was told."""

    def __init__(self, served: Served, token: str, conversation_id: int) -> None:
        self.served = served
        self.token = token
        self.conversation_id = conversation_id
        self.ws: ClientConnection | None = None
        self.acked: set[int] = set()
        self.closes: list[int] = []
        self.n = 0

    async def socket(self) -> ClientConnection:
        if self.ws is None:
            self.ws = await connect(self.served.ws_url(), origin=ORIGIN, compression=None,  # type: ignore[arg-type]
                                    additional_headers={"Cookie": f"rtc_session={self.token}"})
            assert await recv_json(self.ws) == {"type": "ready"}
        return self.ws

    async def throw(self, frame: str | bytes) -> None:
        ws = await self.socket()
        self.n += 1
        ref = f"probe-{self.n}"
        try:
            await ws.send(frame)
            await ws.send(json.dumps({"type": "ping", "ref": ref}))
            while True:
                answer = await recv_json(ws, timeout=10)
                assert answer["type"] in ANSWERS, answer
                if answer["type"] == "ack":
                    self.acked.add(answer["id"])
                if answer["type"] == "error":
                    assert isinstance(answer["code"], str) and isinstance(answer["message"], str)
                if answer == {"type": "pong", "ref": ref}:
                    return
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            assert code in CLOSE_CODES, code
            self.closes.append(code)
            self.ws = None

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


@pytest_asyncio.fixture
async def probe(settings: Settings, secrets_seen: set[str]) -> AsyncIterator[Probe]:
    async with serving(settings, create_app(settings)) as served:
        served.app.state.chat.limits = ROOMY
        clinic = await make_clinic(served.app, secrets_seen)
        conv = (await start(clinic.maria))["conversation"]["id"]
        p = Probe(served, clinic.maria.token, conv)
        try:
            yield p
        finally:
            await p.close()
            await clinic.aclose()


def _aimed(conversation_id: int) -> st.SearchStrategy[str]:
    """Frames that name the real conversation, so many are valid (sends get acked)."""
    cid = st.just(conversation_id)
    seq = st.integers(min_value=0, max_value=5)
    return st.one_of(
        st.fixed_dictionaries({
            "type": st.just("send"), "conversation_id": cid,
            "client_id": st.text(alphabet="abcdef0123456789", min_size=1, max_size=8),
            "body": st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=30),
        }),
        st.fixed_dictionaries({"type": st.sampled_from(["read", "delivered"]), "conversation_id": cid,
                               "seq": seq}),
        st.fixed_dictionaries({"type": st.sampled_from(["typing", "leave"]), "conversation_id": cid}),
        st.fixed_dictionaries({"type": st.just("resume"), "conversation_id": cid, "since": seq}),
    ).map(json.dumps)


def _client_id(frame: str | bytes) -> object:
    """The client id of a frame that is a JSON object, else None."""
    try:
        data = json.loads(frame)
    except ValueError:
        return None
    return data.get("client_id") if isinstance(data, dict) else None


async def test_generated_frames_get_documented_answers_and_only_acked_messages_are_stored(probe) -> None:
    loop = asyncio.get_running_loop()
    seen: list[Any] = []

    # Hypothesis drives sync functions: it runs in a thread and hands each frame
    # to the server's (this test's) loop, which keeps running meanwhile.
    @settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(frame=st.one_of(FRAMES, _aimed(probe.conversation_id), _aimed(probe.conversation_id)))
    def throw(frame: str | bytes) -> None:
        seen.append(frame)
        asyncio.run_coroutine_threadsafe(probe.throw(frame), loop).result(timeout=60)

    await asyncio.to_thread(throw)
    # A barrier: the writer stores in arrival order, so once this is acked every
    # send accepted before it (on any of the probe's sockets) is stored too.
    ws = await probe.socket()
    await ws.send(json.dumps({"type": "send", "conversation_id": probe.conversation_id,
                              "client_id": "barrier", "body": "last"}))
    while (answer := await recv_json(ws))["type"] != "ack" or answer["client_id"] != "barrier":
        pass
    probe.acked.add(answer["id"])
    seen.append(json.dumps({"type": "send", "client_id": "barrier"}))
    stored = (await stored_messages(probe.served.app, probe.conversation_id))[1:]
    assert [m.seq for m in stored] == list(range(2, len(stored) + 2))
    assert len(seen) >= 100 and probe.acked, "some generated sends were valid"
    # Nothing was stored that was not sent as a send frame, and every ack names a stored message.
    thrown = {cid for f in seen if isinstance(cid := _client_id(f), str)}
    assert {m.client_id for m in stored} <= thrown
    assert probe.acked <= {m.id for m in stored}
    # A message stored while its ack was lost (the socket closed first) is
    # recovered by a resend: the same id and seq, stored once.
    await probe.close()
    probe.ws = None
    ws = await probe.socket()
    for m in stored:
        await ws.send(json.dumps({"type": "send", "conversation_id": probe.conversation_id,
                                  "client_id": m.client_id, "body": m.body}))
        while (answer := await recv_json(ws))["type"] != "ack":
            pass
        assert (answer["client_id"], answer["id"], answer["seq"]) == (m.client_id, m.id, m.seq)
    assert len(await stored_messages(probe.served.app, probe.conversation_id)) == len(stored) + 1
