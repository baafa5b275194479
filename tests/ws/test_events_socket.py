"""``/ws/v1/events`` as a browser uses it: a real WebSocket client against the
app served by uvicorn, events announced by services after commit, sessions
that end while the socket is open, and clients that misbehave."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import event, text
from sqlmodel import select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtc_server.audit import AuditEvent
from rtc_server.notify.events import announce, user_channel
from tests.harness import csrf_client
from tests.ws.helpers import (
    ORIGIN,
    closed_with,
    cookie,
    open_socket,
    recv_json,
    signed_in_user,
    small_receive_buffer_socket,
)

DEEP = '{"type":"ping","ref":' + "[" * 1500 + "]" * 1500 + "}"


async def announced(served: object, user_id: int, event: dict) -> None:
    """An event announced by a service in a transaction that commits."""
    async with served.session_factory() as db:  # type: ignore[attr-defined]
        announce(db, user_channel(user_id), event)
        await db.commit()


async def denied_rows(served: object) -> list[AuditEvent]:
    async with served.session_factory() as db:  # type: ignore[attr-defined]
        rows = await db.exec(select(AuditEvent).where(AuditEvent.action == "ws.connect"))
        return list(rows.all())


async def test_signed_in_user_gets_ready_then_answers_to_ping(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    async with open_socket(server, ana) as ws:
        await ws.send(json.dumps({"type": "ping", "ref": "p1"}))
        assert await recv_json(ws) == {"type": "pong", "ref": "p1"}


async def test_foreign_origin_is_refused_audited_and_logged_without_the_cookie(
    server, secrets_seen, log_lines
) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.ws_url(), origin="https://evil.example", additional_headers=cookie(ana)):
            pass
    assert refused.value.response.status_code == 403
    [row] = await denied_rows(server)
    assert (row.outcome, row.actor_id, row.resource) == ("denied", ana.id, "ws:/ws/v1/events")
    assert row.request_id and row.ip == "127.0.0.1"
    assert [line for line in log_lines if "'https://evil.example' is not allowed" in line]


async def test_handshake_without_a_session_is_refused_and_audited(server, secrets_seen) -> None:
    with pytest.raises(InvalidStatus) as anonymous:
        async with connect(server.ws_url(), origin=ORIGIN):
            pass
    assert anonymous.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        async with connect(server.ws_url(), origin=ORIGIN,
                           additional_headers={"Cookie": "rtc_session=not-a-session"}):
            pass
    rows = await denied_rows(server)
    assert [(r.outcome, r.actor_id, r.resource) for r in rows] == [("denied", None, "ws:/ws/v1/events")] * 2


async def test_event_announced_after_commit_reaches_every_socket_of_that_user_only(
    server, secrets_seen
) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    ben = await signed_in_user(server, "ben.okafor", secrets_seen)
    async with open_socket(server, ana) as tab1, open_socket(server, ana) as tab2, \
            open_socket(server, ben) as other:
        await announced(server, ana.id, {"kind": "lab_result", "id": 7})
        expected = {"type": "event", "channel": f"user:{ana.id}", "seq": 1,
                    "event": {"kind": "lab_result", "id": 7}}
        assert await recv_json(tab1) == expected
        assert await recv_json(tab2) == expected
        await announced(server, ben.id, {"kind": "message", "id": 3})
        # Ben's first frame is his own event: nothing of Ana's came before it.
        assert (await recv_json(other))["event"] == {"kind": "message", "id": 3}


async def test_rolled_back_work_announces_nothing(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    async with open_socket(server, ana) as ws:
        async with server.session_factory() as db:
            announce(db, user_channel(ana.id), {"kind": "appointment", "id": 1})
            await db.rollback()
        await announced(server, ana.id, {"kind": "appointment", "id": 2})
        assert (await recv_json(ws))["event"]["id"] == 2


async def test_hub_encodes_each_event_once_however_many_sockets_get_it(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    hub = server.realtime.hub
    async with open_socket(server, ana) as a, open_socket(server, ana) as b, \
            open_socket(server, ana) as c, open_socket(server, ana) as d:
        before = hub.frames_built
        await server.app.state.broker.publish(user_channel(ana.id), {"kind": "refill", "id": 4})
        frames = [await asyncio.wait_for(ws.recv(), 5) for ws in (a, b, c, d)]
        assert hub.frames_built == before + 1
        assert len(set(frames)) == 1 and json.loads(frames[0])["event"] == {"kind": "refill", "id": 4}


async def test_events_on_a_channel_are_numbered_without_gaps(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    async with open_socket(server, ana) as ws:
        for i in range(5):
            await server.app.state.broker.publish(user_channel(ana.id), {"kind": "message", "id": i})
        assert [(await recv_json(ws))["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]


async def test_bad_frames_get_error_frames_and_the_socket_stays_open(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    async with open_socket(server, ana) as ws:
        await ws.send("not json")
        reply = await recv_json(ws)
        assert (reply["type"], reply["code"], reply["ref"]) == ("error", "bad_frame", None)
        await ws.send(json.dumps({"type": "shout", "ref": "r9"}))
        reply = await recv_json(ws)
        assert (reply["code"], reply["ref"]) == ("bad_frame", "r9")
        await ws.send(json.dumps({"type": "ping", "ref": 5}))
        reply = await recv_json(ws)
        assert reply["code"] == "bad_frame" and reply["message"].startswith("ping.ref:")
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv_json(ws) == {"type": "pong", "ref": None}


async def test_deeply_nested_frame_gets_bad_frame_and_the_socket_stays_open(server, secrets_seen) -> None:
    # Security review finding 8: this used to kill the reader with a RecursionError.
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    async with open_socket(server, ana) as ws:
        assert len(DEEP.encode()) < 4096
        await ws.send(DEEP)
        reply = await recv_json(ws)
        assert (reply["type"], reply["code"]) == ("error", "bad_frame")
        await ws.send(json.dumps({"type": "ping", "ref": "still-here"}))
        assert await recv_json(ws) == {"type": "pong", "ref": "still-here"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [(json.dumps({"type": "ping", "ref": "x" * 30_000}), 1009), (b"\x00\x01", 1003)],
    ids=["oversized", "binary"],
)
async def test_oversized_and_binary_frames_close_the_socket_with_their_code(
    server, secrets_seen, frame, code
) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    async with open_socket(server, ana) as ws:
        await ws.send(frame)
        assert await closed_with(ws) == code


async def test_a_flood_of_frames_closes_the_socket_with_1008(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    async with open_socket(server, ana) as ws:
        for i in range(100):
            await ws.send(json.dumps({"type": "ping", "ref": str(i)}))
        assert await closed_with(ws) == 1008


async def test_client_that_stops_reading_is_closed_with_4008_and_others_carry_on(
    server, secrets_seen
) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    ben = await signed_in_user(server, "ben.okafor", secrets_seen)
    server.realtime.outbox_limit = 8
    broker = server.app.state.broker
    padding = "x" * 32_000
    slow = await connect(server.ws_url(), origin=ORIGIN, additional_headers=cookie(ana),
                         sock=small_receive_buffer_socket(server), max_queue=1, compression=None)
    async with open_socket(server, ben) as other:
        assert await recv_json(slow) == {"type": "ready"}
        [conn] = server.realtime.hub.members(user_channel(ana.id))
        sent = 0
        while not conn.closing:  # the client reads nothing meanwhile
            sent += 1
            await broker.publish(user_channel(ana.id), {"kind": "bulk", "id": sent, "pad": padding})
            assert sent < 2000, "backpressure never reached the outbox"
        assert conn.close_code == 4008 and conn.backlog <= 1
        await broker.publish(user_channel(ben.id), {"kind": "message", "id": 1})
        assert (await recv_json(other))["event"] == {"kind": "message", "id": 1}
        # The slow client gets what was already on its way, then the close: nothing silently lost.
        received = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(json.loads(await asyncio.wait_for(slow.recv(), 10))["event"]["id"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        assert received == list(range(1, len(received) + 1)) and len(received) < sent


async def test_log_out_closes_the_socket_at_once_with_4401(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    assert server.realtime.sweeper.interval >= 10, "no periodic sweep may come into play"
    client = await csrf_client(server.app)
    client.cookies.set("rtc_session", ana.token)
    try:
        async with open_socket(server, ana) as ws:
            assert (await client.post("/api/v1/auth/logout")).status_code == 204
            assert await recv_json(ws) == {"type": "session_ended"}
            assert await closed_with(ws) == 4401
    finally:
        await client.aclose()


async def test_sweeper_closes_a_session_that_ended_without_announcement(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    ben = await signed_in_user(server, "ben.okafor", secrets_seen)
    async with open_socket(server, ana) as ws, open_socket(server, ben) as other:
        async with server.session_factory() as db:  # timed out: nothing announces that
            await db.exec(text("UPDATE auth_session SET last_seen_at = '2000-01-01 00:00:00' "
                               "WHERE user_id = :id").bindparams(id=ana.id))
            await db.commit()
        assert await server.realtime.sweeper.sweep() == 1
        assert await recv_json(ws) == {"type": "session_ended"}
        assert await closed_with(ws) == 4401
        await other.send(json.dumps({"type": "ping", "ref": "ben"}))
        assert await recv_json(other) == {"type": "pong", "ref": "ben"}


async def test_one_user_cannot_hold_more_than_the_socket_limit(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    limits = server.realtime.limits
    sockets = [await connect(server.ws_url(), origin=ORIGIN, additional_headers=cookie(ana))
               for _ in range(limits.per_user)]
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.ws_url(), origin=ORIGIN, additional_headers=cookie(ana)):
            pass
    assert refused.value.response.status_code == 403
    await sockets.pop().close()
    while limits.open[ana.id] >= limits.per_user:  # the server frees the slot on its next turns
        await asyncio.sleep(0)
    async with open_socket(server, ana) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"
    for sock in sockets:
        await sock.close()


async def test_handshake_query_strings_stay_out_of_the_log(server, secrets_seen, log_lines) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    marker = "sekrit-query-value-123"
    secrets_seen.add(marker)
    async with open_socket(server, ana, path=f"/ws/v1/events?token={marker}") as ws:
        await ws.send(json.dumps({"type": "ping"}))
        await recv_json(ws)
    assert not [line for line in log_lines if marker in line]


@pytest.mark.settings(ws_recheck_seconds=0.05)
async def test_periodic_sweep_closes_a_socket_whose_session_idled_out(server, secrets_seen) -> None:
    ana = await signed_in_user(server, "ana.silva", secrets_seen)
    async with open_socket(server, ana) as ws:
        async with server.session_factory() as db:
            await db.exec(text("UPDATE auth_session SET last_seen_at = '2000-01-01 00:00:00' "
                               "WHERE user_id = :id").bindparams(id=ana.id))
            await db.commit()
        assert await recv_json(ws) == {"type": "session_ended"}
        assert await closed_with(ws) == 4401


async def test_one_sweep_checks_every_local_session_in_one_query(server, secrets_seen) -> None:
    users = [await signed_in_user(server, f"user.{i}", secrets_seen) for i in range(4)]
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = server.app.state.engine.sync_engine
    async with open_socket(server, users[0]) as a, open_socket(server, users[1]), \
            open_socket(server, users[2]), open_socket(server, users[3]):
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert await server.realtime.sweeper.sweep() == 0
        finally:
            event.remove(engine, "before_cursor_execute", count)
        await a.send(json.dumps({"type": "ping", "ref": "alive"}))
        assert await recv_json(a) == {"type": "pong", "ref": "alive"}
    assert len([s for s in statements if "auth_session" in s]) == 1
