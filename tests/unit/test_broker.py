"""Both brokers deliver each published event, encoded once, to the listeners of
that channel only; Redis confirms subscriptions before ``subscribe`` returns
and, when its connection drops, subscribes again by itself and reports the gap."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from rtc_server.broker import BrokerUnavailable, Inbox, MemoryBroker
from rtc_server.broker.redis import RedisBroker
from tests.harness import need


@pytest_asyncio.fixture(params=["memory", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[object, object]]:
    """Two brokers as two instances see them (the memory broker is one process)."""
    if request.param == "memory":
        broker = MemoryBroker()
        await broker.start()
        yield broker, broker
        await broker.close()
        return
    url = await _reachable_redis()
    one, two = RedisBroker(url), RedisBroker(url)
    await one.start()
    await two.start()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def _reachable_redis() -> str:
    """The test Redis, as the ``redis_url`` fixture finds it (a fixture cannot ask
    for an async fixture by parameter)."""
    from redis.exceptions import RedisError

    url = os.environ.get("RTC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = aioredis.from_url(url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        need("Redis", f"{url}: {type(exc).__name__}")
    finally:
        await client.aclose()
    return url


async def test_subscribers_get_their_channel_only_and_nothing_after_closing(pair) -> None:
    publisher, subscriber = pair
    ch, other = f"test:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}"
    inbox = Inbox()
    sub = await subscriber.subscribe([ch], inbox.put)
    # No sleep: subscribe returned after the broker confirmed it.
    await publisher.publish(other, {"n": 0})
    await publisher.publish(ch, {"n": 1})
    await publisher.publish(ch, {"n": 2})
    assert [await asyncio.wait_for(inbox.get(), 5) for _ in range(2)] == [(ch, {"n": 1}), (ch, {"n": 2})]
    await sub.close()
    # A marker on a channel still subscribed proves everything before it was delivered.
    marker = Inbox()
    keep = await subscriber.subscribe([other], marker.put)
    await publisher.publish(ch, {"n": 3})
    await publisher.publish(other, {"n": "marker"})
    assert await asyncio.wait_for(marker.get(), 5) == (other, {"n": "marker"})
    assert inbox.queue.empty()
    await keep.close()


async def test_a_channel_is_subscribed_once_per_instance_however_many_listen(pair) -> None:
    publisher, subscriber = pair
    ch = f"test:{uuid.uuid4().hex}"
    got: list[str] = []
    subs = [await subscriber.subscribe([ch], lambda _c, data: got.append(data)) for _ in range(3)]
    await publisher.publish(ch, {"kind": "x", "id": 1})
    marker = Inbox()
    await subs[0].add(f"{ch}:marker")
    subs[0].on_message = lambda c, d: marker.put(c, d) if c.endswith(":marker") else got.append(d)
    await publisher.publish(f"{ch}:marker", {})
    await asyncio.wait_for(marker.get(), 5)
    assert got == ['{"kind":"x","id":1}'] * 3, "the publisher's one encoding, to each listener"
    for sub in subs:
        await sub.close()


async def test_a_failing_listener_does_not_stop_the_others() -> None:
    broker = MemoryBroker()

    def broken(_channel: str, _data: str) -> None:
        raise RuntimeError("listener bug")

    inbox = Inbox()
    await broker.subscribe(["c"], broken)
    await broker.subscribe(["c"], inbox.put)
    await broker.publish("c", {"ok": True})
    assert await inbox.get() == ("c", {"ok": True})


async def test_failed_redis_subscribe_does_not_poison_the_channel(redis_url: str) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    broker = RedisBroker(redis_url)
    await broker.start()
    ch = f"test:{uuid.uuid4().hex}"
    real = broker._pubsub.subscribe
    calls = 0

    async def failing_once(*channels: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RedisConnectionError("link down")
        await real(*channels)

    broker._pubsub.subscribe = failing_once
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.subscribe([ch], Inbox().put)
        inbox = Inbox()
        await broker.subscribe([ch], inbox.put)
        assert calls == 2, "the second subscriber must send SUBSCRIBE again"
        await broker.publish(ch, {"ok": True})
        assert await asyncio.wait_for(inbox.get(), 5) == (ch, {"ok": True})
    finally:
        await broker.close()


async def test_redis_broker_resubscribes_after_losing_its_connection_and_reports_the_gap(
    redis_url: str,
) -> None:
    name = f"broker-{uuid.uuid4().hex[:12]}"
    publisher, broker = RedisBroker(redis_url), RedisBroker(f"{redis_url}?client_name={name}")
    await publisher.start()
    await broker.start()
    ch = f"test:{uuid.uuid4().hex}"
    inbox = Inbox()
    gap = asyncio.Event()
    try:
        await broker.subscribe([ch], inbox.put, gap.set)
        await _kill_subscription_connection(redis_url, name)
        await asyncio.wait_for(gap.wait(), 10)  # called once subscribed again
        assert broker.healthy
        await publisher.publish(ch, {"after": "reconnect"})
        assert await asyncio.wait_for(inbox.get(), 5) == (ch, {"after": "reconnect"})
    finally:
        await publisher.close()
        await broker.close()


async def _kill_subscription_connection(redis_url: str, client_name: str) -> None:
    """Cut the named broker's subscription connection, as a network failure or a
    Redis restart would (other tests may share this Redis: only ours)."""
    admin = aioredis.from_url(redis_url)
    try:
        [victim] = [c for c in await admin.client_list()
                    if c.get("name") == client_name and int(c.get("sub", 0)) > 0]
        await admin.client_kill_filter(_id=victim["id"])
    finally:
        await admin.aclose()
