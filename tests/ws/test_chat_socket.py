"""Messaging on the page's one socket (``/ws/v1/events``): a patient and a
provider chat live, with acks, typing and receipts; a dropped connection
resumes with exactly what it missed; bad frames get the documented error or
close code and store nothing, while other people's sockets carry on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from sqlmodel import select
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rtc_server.app import create_app
from rtc_server.audit import AuditEvent
from rtc_server.chat.runtime import ChatLimits
from rtc_server.chat.shapes import MAX_BODY_CHARS
from rtc_server.chat.ws import MAX_FRAME_BYTES
from rtc_server.config import Settings
from tests.api.test_chat_support import ROOMY, Clinic, Person, make_clinic, start, stored_messages
from tests.ws.helpers import Served, User, closed_with, open_socket, recv_json, serving


@pytest_asyncio.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    async with serving(settings, create_app(settings)) as s:
        s.app.state.chat.limits = ROOMY
        yield s


@pytest_asyncio.fixture
async def clinic(served: Served, secrets_seen: set[str]) -> AsyncIterator[Clinic]:
    c = await make_clinic(served.app, secrets_seen)
    try:
        yield c
    finally:
        await c.aclose()


@asynccontextmanager
async def socket(served: Served, p: Person, **options: Any) -> AsyncIterator[ClientConnection]:
    async with open_socket(served, User(p.user_id, p.token), **options) as ws:
        yield ws


async def send_frame(ws: ClientConnection, **frame: Any) -> None:
    await ws.send(json.dumps(frame))


async def next_frame(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame of ``kind``, skipping others (user-channel events, receipts)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await recv_json(ws, timeout)
            if frame["type"] == kind:
                return frame


async def resume(ws: ClientConnection, conversation_id: int, since: int = 0) -> list[dict[str, Any]]:
    """Follow a conversation; the messages replayed before ``live``."""
    await send_frame(ws, type="resume", conversation_id=conversation_id, since=since)
    replayed = []
    async with asyncio.timeout(10):
        while True:
            frame = await recv_json(ws)
            if frame["type"] == "message":
                replayed.append(frame)
            elif frame["type"] == "live":
                assert frame == {"type": "live", "conversation_id": conversation_id,
                                 "seq": replayed[-1]["seq"] if replayed else since}
                return replayed


async def quiet(ws: ClientConnection, kind: str, seconds: float = 0.3) -> list[dict[str, Any]]:
    """Frames of ``kind`` that arrive within ``seconds`` (to show none does)."""
    got = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == kind:
                    got.append(frame)
    except TimeoutError:
        pass
    return got


async def test_patient_and_provider_chat_live_with_acks_typing_and_read_receipts(served, clinic) -> None:
    conv = (await start(clinic.maria, body="Can I take it with food?"))["conversation"]["id"]
    async with socket(served, clinic.maria) as patient, socket(served, clinic.reyes) as doctor:
        assert [m["body"] for m in await resume(patient, conv)] == ["Can I take it with food?"]
        assert [m["seq"] for m in await resume(doctor, conv)] == [1]

        await send_frame(doctor, type="typing", conversation_id=conv)
        assert await next_frame(patient, "typing") == {
            "type": "typing", "conversation_id": conv, "user_id": clinic.reyes.user_id}

        await send_frame(doctor, type="send", conversation_id=conv, client_id="dr-1", ref="r1",
                         body="Yes, with food is better.")
        ack = await next_frame(doctor, "ack")
        assert (ack["ref"], ack["conversation_id"], ack["seq"], ack["client_id"]) == ("r1", conv, 2, "dr-1")
        message = await next_frame(patient, "message")
        assert (message["id"], message["seq"], message["body"], message["sender_id"],
                message["sender_role"]) == (ack["id"], 2, "Yes, with food is better.",
                                            clinic.reyes.user_id, "provider")

        await send_frame(patient, type="read", conversation_id=conv, seq=2)
        assert await next_frame(doctor, "read") == {
            "type": "read", "conversation_id": conv, "user_id": clinic.maria.user_id, "seq": 2}
        await send_frame(patient, type="send", conversation_id=conv, client_id="pt-1", body="Thanks!")
        assert (await next_frame(doctor, "message"))["body"] == "Thanks!"
        # Nobody gets their own message or their own typing back.
        assert await quiet(doctor, "typing") == []
        assert await quiet(patient, "message") == []
    detail = (await clinic.reyes.client.get(f"/api/v1/conversations/{conv}")).json()
    assert {m["user_id"]: m["last_read_seq"] for m in detail["members"]}[clinic.maria.user_id] == 2


async def test_a_message_sent_over_http_arrives_live_and_the_inbox_hears_of_it(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with socket(served, clinic.maria) as following, socket(served, clinic.maria) as inbox:
        await resume(following, conv)
        r = await clinic.reyes.client.post(f"/api/v1/conversations/{conv}/messages",
                                           json={"body": "Results are normal.", "client_id": "h1"})
        assert r.status_code == 201
        assert (await next_frame(following, "message"))["body"] == "Results are normal."
        # A page that does not follow the conversation (the dashboard) gets the count, not the text.
        event = await next_frame(inbox, "event")
        assert event["event"] == {"kind": "chat.unread", "conversation_id": conv, "seq": 2}
        assert "Results" not in json.dumps(event)


async def test_the_senders_other_tab_sees_the_message_too(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with socket(served, clinic.maria) as tab1, socket(served, clinic.maria) as tab2:
        await resume(tab1, conv)
        await resume(tab2, conv)
        await send_frame(tab1, type="send", conversation_id=conv, client_id="t1", body="From tab one")
        assert (await next_frame(tab2, "message"))["client_id"] == "t1"
        assert (await next_frame(tab1, "ack"))["seq"] == 2


async def test_after_a_dropped_connection_resume_delivers_exactly_the_missed_messages_once(
    served, clinic,
) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with socket(served, clinic.reyes) as doctor:
        await resume(doctor, conv)
        async with socket(served, clinic.maria) as patient:
            await resume(patient, conv)
            await send_frame(doctor, type="send", conversation_id=conv, client_id="d0", body="before")
            seen = (await next_frame(patient, "message"))["seq"]
            patient.transport.abort()  # the network goes away, no close handshake
        for i in range(1, 6):
            await send_frame(doctor, type="send", conversation_id=conv, client_id=f"d{i}", body=f"missed {i}")
            await next_frame(doctor, "ack")
        async with socket(served, clinic.maria) as patient:
            replayed = await resume(patient, conv, since=seen)
            assert [(m["seq"], m["body"]) for m in replayed] == [(3 + i, f"missed {i + 1}") for i in range(5)]
            await send_frame(doctor, type="send", conversation_id=conv, client_id="d6", body="live again")
            assert (await next_frame(patient, "message"))["seq"] == 8
            assert await quiet(patient, "message") == []
    assert len(served.app.state.chat.relay._sockets) == 0, "closed sockets are forgotten"


async def test_a_long_catch_up_arrives_whole_and_in_order(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    for i in range(250):
        r = await clinic.reyes.client.post(f"/api/v1/conversations/{conv}/messages",
                                           json={"body": f"n{i}", "client_id": f"n{i}"})
        assert r.status_code == 201
    served.app.state.chat.relay.cache.__init__(limit=50)  # most of it must come from the database
    async with socket(served, clinic.maria) as patient:
        replayed = await resume(patient, conv, since=0)
    assert [m["seq"] for m in replayed] == list(range(1, 252))


async def test_a_closed_conversation_refuses_socket_sends_and_stores_nothing(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with socket(served, clinic.maria) as patient:
        await resume(patient, conv)
        assert (await clinic.reyes.client.post(f"/api/v1/conversations/{conv}/close")).status_code == 200
        changed = await next_frame(patient, "conversation")
        assert changed == {"type": "conversation", "conversation_id": conv}
        await send_frame(patient, type="send", conversation_id=conv, client_id="late", body="Wait!")
        error = await next_frame(patient, "error")
        assert (error["code"], error["ref"]) == ("conversation_closed", "late")
    assert [m.seq for m in await stored_messages(served.app, conv)] == [1]


async def test_routing_away_stops_delivery_to_a_provider_who_lost_access(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with served.app.state.session_factory() as db:  # Maria's record names nobody now
        from sqlalchemy import update

        from rtc_server.records.models import Patient
        await db.exec(update(Patient).where(Patient.id == clinic.maria.patient_id)
                      .values(primary_practitioner_id=None))
        await db.commit()
    async with socket(served, clinic.reyes) as doctor:
        await resume(doctor, conv)
        r = await clinic.desk.client.post(f"/api/v1/conversations/{conv}/route",
                                          json={"provider_id": clinic.ortiz.practitioner_id})
        assert r.status_code == 200
        assert await next_frame(doctor, "unfollowed") == {"type": "unfollowed", "conversation_id": conv}
        await clinic.maria.client.post(f"/api/v1/conversations/{conv}/messages",
                                       json={"body": "For Dr. Ortiz", "client_id": "o1"})
        assert await quiet(doctor, "message") == []


# --- bad frames -------------------------------------------------------------------------

async def denied(served: Served) -> list[AuditEvent]:
    async with served.session_factory() as db:
        return list((await db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied"))).all())


@pytest.mark.parametrize(("text", "message"), [
    ("this is not json", "Invalid JSON"),
    ('{"type":"shout","conversation_id":1}', "does not match any of the expected tags"),
    ('{"type":"send","conversation_id":"1","client_id":"a","body":"x"}', "conversation_id"),
    ('{"type":"send","conversation_id":1,"client_id":"a b","body":"x"}', "client_id"),
    ('{"type":"resume","conversation_id":1,"since":-1}', "since"),
    ('{"type":"read","conversation_id":1}', "seq"),
    ('{"type":"send","conversation_id":1,"client_id":"a","body":"x","admin":true}', "admin"),
])
async def test_malformed_frames_get_bad_frame_and_the_socket_stays_open(
    served, clinic, text, message,
) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with socket(served, clinic.maria) as ws:
        await ws.send(text)
        error = await next_frame(ws, "error")
        assert error["code"] == "bad_frame" and message in error["message"], error
        await send_frame(ws, type="ping", ref="still-here")
        assert await next_frame(ws, "pong") == {"type": "pong", "ref": "still-here"}
    assert [m.seq for m in await stored_messages(served.app, conv)] == [1]


async def test_a_message_over_the_limit_is_refused_as_too_long(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with socket(served, clinic.maria) as ws:
        await send_frame(ws, type="send", conversation_id=conv, client_id="big",
                         body="é" * (MAX_BODY_CHARS + 1))
        error = await next_frame(ws, "error")
        assert (error["code"], error["ref"]) == ("too_long", "big")
        assert f"at most {MAX_BODY_CHARS} characters" in error["message"]
        await send_frame(ws, type="send", conversation_id=conv, client_id="ok", body="é" * MAX_BODY_CHARS)
        assert (await next_frame(ws, "ack"))["seq"] == 2


async def test_an_oversized_frame_closes_the_socket_with_1009_and_stores_nothing(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with socket(served, clinic.maria) as ws:
        await send_frame(ws, type="send", conversation_id=conv, client_id="huge",
                         body="x" * (MAX_FRAME_BYTES + 10))
        assert await closed_with(ws) == 1009
    assert [m.seq for m in await stored_messages(served.app, conv)] == [1]


async def test_someone_elses_conversation_is_not_found_on_the_socket_and_audited(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with socket(served, clinic.sam) as ws:
        for frame in ({"type": "resume", "conversation_id": conv, "ref": "r"},
                      {"type": "send", "conversation_id": conv, "client_id": "s1", "body": "peek"},
                      {"type": "typing", "conversation_id": conv, "ref": "r"},
                      {"type": "read", "conversation_id": conv, "seq": 1, "ref": "r"}):
            await send_frame(ws, **frame)
            error = await next_frame(ws, "error")
            assert error["code"] == "not_found", error
        await send_frame(ws, type="ping")
        assert (await next_frame(ws, "pong"))["type"] == "pong"
    rows = [r for r in await denied(served) if r.actor_id == clinic.sam.user_id]
    assert len(rows) == 4 and {r.patient_id for r in rows} == {clinic.maria.patient_id}
    assert [m.seq for m in await stored_messages(served.app, conv)] == [1]


async def test_a_flood_closes_only_the_flooding_socket_with_1008(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    async with socket(served, clinic.maria) as flooder, socket(served, clinic.reyes) as doctor:
        await resume(doctor, conv)
        for i in range(200):
            try:
                await send_frame(flooder, type="typing", conversation_id=conv, ref=str(i))
            except ConnectionClosed:
                break
        assert await closed_with(flooder) == 1008
        await clinic.maria.client.post(f"/api/v1/conversations/{conv}/messages",
                                       json={"body": "after the flood", "client_id": "af"})
        assert (await next_frame(doctor, "message"))["body"] == "after the flood"


async def test_sending_faster_than_the_personal_rate_gets_rate_limited_frames(served, clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]["id"]
    served.app.state.chat.limits = ChatLimits(messages_per_second=0.01, burst=2)
    async with socket(served, clinic.maria) as ws:
        for i in range(4):
            await send_frame(ws, type="send", conversation_id=conv, client_id=f"q{i}", body="hi")
        answers = [await recv_json(ws) for _ in range(4)]  # refusals come at once, acks after commit
        acks = [f for f in answers if f["type"] == "ack"]
        errors = [f for f in answers if f["type"] == "error"]
        assert [(f["ref"], f["seq"]) for f in acks] == [("q0", 2), ("q1", 3)]
        assert [(e["code"], e["ref"]) for e in errors] == [("rate_limited", "q2"), ("rate_limited", "q3")]
        await send_frame(ws, type="ping", ref="open")
        assert (await next_frame(ws, "pong"))["ref"] == "open"
    assert [m.seq for m in await stored_messages(served.app, conv)] == [1, 2, 3]
