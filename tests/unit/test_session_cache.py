"""The per-instance session cache (``auth.session_cache``): signed-in requests
are answered without a database read, yet a session ended anywhere stops
working on every instance as soon as the event arrives, and a cache whose
broker is cut off is not believed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from sqlalchemy import update
from sqlmodel import col

from rtc_server.app import create_app
from rtc_server.auth.models import AuthSession
from rtc_server.auth.tokens import token_hash
from rtc_server.broker import Inbox
from rtc_server.db import utcnow
from rtc_server.notify.events import user_channel
from tests.harness import create_user, csrf_client, make_settings, sign_in


async def _signed_in(app: Any, username: str, secrets_seen: set[str]) -> tuple[httpx.AsyncClient, int]:
    user_id = await create_user(app.state.session_factory, username)
    client = await csrf_client(app)
    await sign_in(client, username, secrets_seen)
    return client, user_id


async def _until_cached(client: httpx.AsyncClient, app: Any) -> None:
    """Ask until the instance answers from its cache (the first request subscribes)."""
    cache = app.state.session_cache
    async with asyncio.timeout(5):
        while True:
            hits = cache.hits
            assert (await client.get("/api/v1/account")).status_code == 200
            if cache.hits > hits:
                return
            await asyncio.sleep(0.01)


async def _end_silently(app: Any, token: str) -> None:
    """End a session in the database without telling anyone (no event)."""
    async with app.state.session_factory() as db:
        await db.exec(update(AuthSession).where(col(AuthSession.id) == token_hash(token))
                      .values(ended_at=utcnow()))
        await db.commit()


async def test_signed_in_requests_are_answered_from_the_cache(app, secrets_seen) -> None:
    client, _ = await _signed_in(app, "maria.lopez", secrets_seen)
    try:
        await _until_cached(client, app)
        hits = app.state.session_cache.hits
        for _ in range(3):
            assert (await client.get("/api/v1/account")).status_code == 200
        assert app.state.session_cache.hits == hits + 3
    finally:
        await client.aclose()


async def test_log_out_ends_a_cached_session_at_once(app, make_client, secrets_seen) -> None:
    client, _ = await _signed_in(app, "maria.lopez", secrets_seen)
    try:
        await _until_cached(client, app)
        token = client.cookies["rtc_session"]
        assert (await client.post("/api/v1/auth/logout")).status_code == 204
        replay = await make_client()
        replay.cookies.set("rtc_session", token)
        assert (await replay.get("/api/v1/account")).status_code == 401
    finally:
        await client.aclose()


async def test_ending_another_session_of_mine_stops_it_at_once(app, make_client, secrets_seen) -> None:
    client, _ = await _signed_in(app, "maria.lopez", secrets_seen)
    phone = await make_client()
    await sign_in(phone, "maria.lopez", secrets_seen)
    try:
        await _until_cached(phone, app)
        listed = (await client.get("/api/v1/account/sessions")).json()
        other = next(s for s in listed if not s["current"])
        assert (await client.delete(f"/api/v1/account/sessions/{other['id']}")).status_code == 204
        assert (await phone.get("/api/v1/account")).status_code == 401
    finally:
        await client.aclose()


# --- two instances: one database, one Redis ------------------------------------------

@pytest_asyncio.fixture
async def two_apps(settings, redis_url: str, tmp_path: Path, smtp) -> AsyncIterator[tuple[Any, Any]]:
    shared = make_settings(tmp_path, settings.database_url, smtp, redis_url=redis_url)
    one, two = create_app(shared), create_app(shared)
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        yield one, two


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
async def test_a_session_ended_on_another_instance_is_refused_on_the_next_request(
    two_apps, secrets_seen
) -> None:
    one, two = two_apps
    a, user_id = await _signed_in(one, "maria.lopez", secrets_seen)
    b = await csrf_client(two)
    inbox = Inbox()
    heard = await one.state.broker.subscribe([user_channel(user_id)], inbox.put)
    try:
        await _until_cached(a, one)
        b.cookies.set("rtc_session", a.cookies["rtc_session"])
        assert (await b.post("/api/v1/auth/logout")).status_code == 204
        # Instance one hears of it through Redis (its cache listens on the same channel) ...
        async with asyncio.timeout(5):
            _, event = await inbox.get()
        assert event == {"kind": "session_check"}
        # ... and refuses the cookie on the next request.
        assert (await a.get("/api/v1/account")).status_code == 401
        assert (await a.get("/api/v1/dashboard")).status_code == 401
    finally:
        await heard.close()
        await a.aclose()
        await b.aclose()


async def test_a_broker_outage_empties_the_cache_and_the_database_decides(
    two_apps, secrets_seen, redis_url: str
) -> None:
    """Events published while an instance was cut off from Redis are lost: the
    cache must not outlive the outage. (Here the session ends with no event at
    all, the worst case.)"""
    one, _ = two_apps
    a, user_id = await _signed_in(one, "maria.lopez", secrets_seen)
    inbox = Inbox()
    heard = await one.state.broker.subscribe([user_channel(user_id)], inbox.put, inbox.gap)
    try:
        await _until_cached(a, one)
        await _end_silently(one, a.cookies["rtc_session"])
        # Still cached: nothing told the instance (this is what events are for).
        assert (await a.get("/api/v1/account")).status_code == 200
        admin = aioredis.from_url(redis_url)
        try:
            await admin.client_kill_filter(_type="pubsub")  # every instance's subscriber connection
        finally:
            await admin.aclose()
        async with asyncio.timeout(10):
            while inbox.gaps == 0:  # reconnected and resubscribed: it reports the gap
                await asyncio.sleep(0.02)
        assert (await a.get("/api/v1/account")).status_code == 401
    finally:
        await heard.close()
        await a.aclose()


async def test_the_cache_is_not_believed_while_the_broker_is_cut_off(app, secrets_seen, monkeypatch) -> None:
    client, _ = await _signed_in(app, "maria.lopez", secrets_seen)
    broker = app.state.broker
    try:
        await _until_cached(client, app)
        await _end_silently(app, client.cookies["rtc_session"])
        # The broker stops reaching this instance (as a Redis broker does when its
        # connection drops: ``healthy`` turns False until it has reconnected).
        monkeypatch.setattr(type(broker), "healthy", property(lambda _self: False))
        assert (await client.get("/api/v1/account")).status_code == 401
    finally:
        await client.aclose()
