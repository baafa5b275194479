"""Two server instances on one PostgreSQL database and one Redis: what a
clinic gets behind a load balancer. Sessions, throttles and events cross
instances; nothing depends on which instance a request lands on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from rtc_server.app import create_app
from rtc_server.auth.accounts import create_account
from rtc_server.auth.models import Role
from rtc_server.broker import Inbox
from rtc_server.notify.events import announce, user_channel
from tests.harness import csrf_client, make_settings
from tests.ws.helpers import open_socket, recv_json, serving, signed_in_user

PASSWORD = "Quiet-Harbor-Lamp-42"
pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest_asyncio.fixture
async def two_apps(settings, redis_url: str, tmp_path: Path, smtp) -> AsyncIterator[tuple]:
    shared = make_settings(tmp_path, settings.database_url, smtp, redis_url=redis_url)
    one, two = create_app(shared), create_app(shared)
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        yield one, two


async def test_session_from_one_instance_works_on_the_other(two_apps, secrets_seen) -> None:
    one, two = two_apps
    secrets_seen.add(PASSWORD)
    async with one.state.session_factory() as s:
        await create_account(s, username="nurse.kim", password=PASSWORD, role=Role.patient)
        await s.commit()
    a = await csrf_client(one)
    b = await csrf_client(two)
    try:
        r = await a.post("/api/v1/auth/login", json={"username": "nurse.kim", "password": PASSWORD})
        assert r.status_code == 200
        cookie = a.cookies["rtc_session"]
        secrets_seen.add(cookie)
        b.cookies.set("rtc_session", cookie)
        assert (await b.get("/api/v1/auth/session")).json()["user"]["username"] == "nurse.kim"
        # Log out on B: the cookie is dead on A too.
        assert (await b.post("/api/v1/auth/logout")).status_code == 204
        assert (await a.get("/api/v1/auth/session")).status_code == 401
    finally:
        await a.aclose()
        await b.aclose()


async def test_failed_logins_on_both_instances_add_up_to_one_lock(two_apps, secrets_seen) -> None:
    one, two = two_apps
    secrets_seen.add(PASSWORD)
    async with one.state.session_factory() as s:
        await create_account(s, username="lee.park", password=PASSWORD, role=Role.patient,
                             email="lee@example.org")
        await s.commit()
    clients = [await csrf_client(one), await csrf_client(two)]
    try:
        for i in range(6):
            r = await clients[i % 2].post(
                "/api/v1/auth/login", json={"username": "lee.park", "password": "Wrong-Guess-99"})
            assert r.status_code == 401
        r = await clients[0].post(
            "/api/v1/auth/login", json={"username": "lee.park", "password": PASSWORD})
        assert r.status_code == 401, "the lock must hold on every instance"
    finally:
        for c in clients:
            await c.aclose()


async def test_event_published_on_one_instance_reaches_a_subscriber_on_the_other(two_apps) -> None:
    one, two = two_apps
    inbox = Inbox()
    sub = await two.state.broker.subscribe(["user:42"], inbox.put)  # returns once Redis confirmed it
    await one.state.broker.publish("user:42", {"type": "lab_result", "id": 7})
    channel, event = await asyncio.wait_for(inbox.get(), 5)
    assert (channel, event) == ("user:42", {"type": "lab_result", "id": 7})
    await sub.close()
    c = await csrf_client(two)
    health = (await c.get("/healthz")).json()
    await c.aclose()
    assert health["status"] == "ok"


@pytest_asyncio.fixture
async def two_servers(settings, redis_url: str, tmp_path: Path, smtp) -> AsyncIterator[tuple]:
    """Two instances served by uvicorn on one PostgreSQL database and one Redis."""
    name = f"rtc-scale-{uuid.uuid4().hex[:12]}"
    shared = make_settings(tmp_path, settings.database_url, smtp, redis_url=f"{redis_url}?client_name={name}")
    async with serving(shared) as one, serving(shared) as two:
        yield one, two, name


async def test_event_announced_on_one_instance_reaches_a_socket_on_the_other(
    two_servers, secrets_seen
) -> None:
    one, two, _ = two_servers
    ana = await signed_in_user(one, "ana.silva", secrets_seen)
    async with open_socket(two, ana) as ws:
        async with one.session_factory() as db:
            announce(db, user_channel(ana.id), {"kind": "lab_result", "id": 7})
            await db.commit()
        assert await recv_json(ws) == {"type": "event", "channel": f"user:{ana.id}", "seq": 1,
                                       "event": {"kind": "lab_result", "id": 7}}


async def test_log_out_on_one_instance_closes_the_socket_on_the_other_at_once(
    two_servers, secrets_seen
) -> None:
    one, two, _ = two_servers
    ana = await signed_in_user(one, "ana.silva", secrets_seen)
    client = await csrf_client(one.app)
    client.cookies.set("rtc_session", ana.token)
    try:
        async with open_socket(two, ana) as ws:
            assert (await client.post("/api/v1/auth/logout")).status_code == 204
            assert await recv_json(ws) == {"type": "session_ended"}
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    finally:
        await client.aclose()


async def test_after_redis_drops_the_connection_sockets_get_resync_and_events_flow_again(
    two_servers, secrets_seen, redis_url
) -> None:
    one, two, name = two_servers
    ana = await signed_in_user(one, "ana.silva", secrets_seen)
    async with open_socket(two, ana) as ws:
        await _cut_subscription_connection(redis_url, name)
        # Sent once instance two is subscribed again: refetching then misses nothing.
        assert await recv_json(ws, timeout=15) == {"type": "resync", "channel": f"user:{ana.id}"}
        assert two.app.state.broker.healthy
        await one.app.state.broker.publish(user_channel(ana.id), {"kind": "message", "id": 9})
        assert (await recv_json(ws))["event"] == {"kind": "message", "id": 9}


async def _cut_subscription_connection(redis_url: str, name: str) -> None:
    """Kill the Redis connection carrying the subscriptions (as a network failure would)."""
    admin = aioredis.from_url(redis_url)
    try:
        # Both instances share the client name; only ``served`` listens on a channel.
        [victim] = [c for c in await admin.client_list()
                    if c.get("name") == name and int(c.get("sub", 0)) > 0]
        await admin.client_kill_filter(_id=victim["id"])
    finally:
        await admin.aclose()
