"""Two server instances on one PostgreSQL database and one Redis: what a
clinic gets behind a load balancer. Sessions, throttles and events cross
instances; nothing depends on which instance a request lands on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from rtc_server.app import create_app
from rtc_server.auth.accounts import create_account
from rtc_server.auth.models import Role
from tests.harness import csrf_client, make_settings

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
    sub = await two.state.broker.subscribe(["user:42"])
    await asyncio.sleep(0.1)
    await one.state.broker.publish("user:42", {"type": "lab_result", "id": 7})
    channel, event = await asyncio.wait_for(sub.get(), 5)
    assert (channel, event) == ("user:42", {"type": "lab_result", "id": 7})
    await sub.close()
    c = await csrf_client(two)
    health = (await c.get("/healthz")).json()
    await c.aclose()
    assert health["broker"]["kind"] == "redis" and health["broker"]["ok"] is True
    assert health["database"]["kind"].startswith("postgresql")
