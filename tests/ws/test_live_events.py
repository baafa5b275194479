"""``/ws/v1/events`` as a browser or app uses it: a real WebSocket client
against a real server, events arriving through real Redis from "another
instance", and the handshake refusing foreign origins and missing sessions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtc_server.auth.accounts import create_account
from rtc_server.auth.models import Role
from rtc_server.db import create_engine, make_session_factory
from rtc_server.notify import live
from tests.conftest import LiveServer, running_server

PASSWORD = "Window-Cedar-Lamp-31"


@pytest_asyncio.fixture
async def server(tmp_path, database_url, smtp, redis_url) -> AsyncIterator[LiveServer]:
    async with running_server(tmp_path, database_url, smtp, redis_url=redis_url) as srv:
        engine = create_engine(srv.settings)
        async with make_session_factory(engine)() as s:
            await create_account(s, username="ana.silva", password=PASSWORD, role=Role.patient)
            await s.commit()
        await engine.dispose()
        yield srv


async def sign_in(server: LiveServer, secrets_seen: set[str]) -> tuple[httpx.AsyncClient, str, int]:
    client = httpx.AsyncClient(base_url=server.url)
    token = (await client.get("/api/v1/auth/csrf")).json()["csrf_token"]
    client.headers["X-CSRF-Token"] = token
    r = await client.post("/api/v1/auth/login", json={"username": "ana.silva", "password": PASSWORD})
    assert r.status_code == 200
    cookie = client.cookies["rtc_session"]
    secrets_seen.update({PASSWORD, cookie})
    return client, cookie, r.json()["user"]["id"]


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/ws/v1/events"


async def test_foreign_origin_and_missing_session_are_refused_at_the_handshake(
    server, secrets_seen
) -> None:
    client, cookie, _ = await sign_in(server, secrets_seen)
    with pytest.raises(InvalidStatus) as foreign:
        async with connect(ws_url(server), origin="https://evil.example",
                           additional_headers={"Cookie": f"rtc_session={cookie}"}):
            pass
    assert foreign.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as anonymous:
        async with connect(ws_url(server), origin=server.url):
            pass
    assert anonymous.value.response.status_code == 403
    await client.aclose()


async def test_event_published_by_another_instance_reaches_the_users_socket(
    server, secrets_seen, redis_url
) -> None:
    client, cookie, user_id = await sign_in(server, secrets_seen)
    async with connect(ws_url(server), origin=server.url,
                       additional_headers={"Cookie": f"rtc_session={cookie}"}) as ws:
        await ws.send(json.dumps({"type": "ping", "ref": "p1"}))
        assert json.loads(await ws.recv()) == {"type": "pong", "ref": "p1"}
        r = aioredis.from_url(redis_url)
        await r.publish(f"user:{user_id + 1000}", json.dumps({"kind": "not for you"}))
        await r.publish(f"user:{user_id}", json.dumps({"kind": "lab_result", "id": 7}))
        await r.aclose()
        got = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert got == {"type": "event", "event": {"kind": "lab_result", "id": 7}}
    await client.aclose()


async def test_bad_frames_get_error_frames_and_the_socket_stays_open(server, secrets_seen) -> None:
    client, cookie, _ = await sign_in(server, secrets_seen)
    async with connect(ws_url(server), origin=server.url,
                       additional_headers={"Cookie": f"rtc_session={cookie}"}) as ws:
        for bad in ("not json", json.dumps({"type": "shout", "ref": "r9"})):
            await ws.send(bad)
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and reply["code"] == "bad_frame"
        assert reply["ref"] == "r9"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"
        await ws.send(json.dumps({"type": "ping", "ref": "x" * 5000}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 1009
    await client.aclose()


async def test_socket_closes_with_4401_as_soon_as_the_user_logs_out(
    server, secrets_seen, monkeypatch
) -> None:
    # The periodic re-check is far away: the log-out announcement must close it.
    monkeypatch.setattr(live, "SESSION_RECHECK_SECONDS", 3600)
    client, cookie, _ = await sign_in(server, secrets_seen)
    async with connect(ws_url(server), origin=server.url,
                       additional_headers={"Cookie": f"rtc_session={cookie}"}) as ws:
        assert (await client.post("/api/v1/auth/logout")).status_code == 204
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "session_ended"}
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 4401
    await client.aclose()


async def test_binary_frames_close_the_socket_with_1003(server, secrets_seen) -> None:
    client, cookie, _ = await sign_in(server, secrets_seen)
    async with connect(ws_url(server), origin=server.url,
                       additional_headers={"Cookie": f"rtc_session={cookie}"}) as ws:
        await ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 1003
    await client.aclose()


async def test_one_user_cannot_hold_more_than_the_socket_limit(server, secrets_seen) -> None:
    client, cookie, _ = await sign_in(server, secrets_seen)
    limit = server.settings.ws_max_per_user
    headers = {"Cookie": f"rtc_session={cookie}"}
    open_sockets = [await connect(ws_url(server), origin=server.url, additional_headers=headers)
                    for _ in range(limit)]
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server), origin=server.url, additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403
    await open_sockets.pop().close()
    await asyncio.sleep(0.2)
    async with connect(ws_url(server), origin=server.url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"
    for sock in open_sockets:
        await sock.close()
    await client.aclose()


async def test_handshake_query_strings_stay_out_of_the_log(server, secrets_seen, log_lines) -> None:
    client, cookie, _ = await sign_in(server, secrets_seen)
    marker = "sekrit-query-value-123"
    secrets_seen.add(marker)
    async with connect(ws_url(server) + f"?token={marker}", origin=server.url,
                       additional_headers={"Cookie": f"rtc_session={cookie}"}) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        await ws.recv()
    assert not [line for line in log_lines if marker in line]
    await client.aclose()


async def test_socket_closes_at_the_periodic_check_when_the_session_times_out(
    server, secrets_seen, monkeypatch
) -> None:
    from sqlalchemy import text

    monkeypatch.setattr(live, "SESSION_RECHECK_SECONDS", 0.2)
    client, cookie, _ = await sign_in(server, secrets_seen)
    async with connect(ws_url(server), origin=server.url,
                       additional_headers={"Cookie": f"rtc_session={cookie}"}) as ws:
        engine = create_engine(server.settings)
        async with engine.begin() as conn:  # the session idles out (nothing announces it)
            await conn.execute(text("UPDATE auth_session SET last_seen_at = '2000-01-01 00:00:00'"))
        await engine.dispose()
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "session_ended"}
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 4401
    await client.aclose()
