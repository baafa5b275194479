"""Both brokers deliver published events to subscribers of that channel only."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from rtc_server.broker.memory import MemoryBroker
from rtc_server.broker.redis import RedisBroker


async def _roundtrip(a: object, b: object) -> None:
    ch = f"test:{uuid.uuid4().hex}"
    other = f"test:{uuid.uuid4().hex}"
    sub = await b.subscribe([ch])  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    await a.publish(other, {"n": 0})  # type: ignore[attr-defined]
    await a.publish(ch, {"n": 1})  # type: ignore[attr-defined]
    await a.publish(ch, {"n": 2})  # type: ignore[attr-defined]
    got = [await asyncio.wait_for(sub.get(), 5) for _ in range(2)]
    assert got == [(ch, {"n": 1}), (ch, {"n": 2})]
    await sub.close()
    await a.publish(ch, {"n": 3})  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    assert sub.queue.empty()


async def test_memory_broker_delivers_to_subscribers() -> None:
    broker = MemoryBroker()
    await broker.start()
    await _roundtrip(broker, broker)
    await broker.close()


async def test_redis_broker_delivers_across_instances(redis_url: str) -> None:
    one, two = RedisBroker(redis_url), RedisBroker(redis_url)
    await one.start()
    await two.start()
    try:
        await _roundtrip(one, two)
        assert (await two.health())["ok"] is True
    finally:
        await one.close()
        await two.close()


async def test_slow_subscriber_drops_oldest_not_memory() -> None:
    broker = MemoryBroker()
    sub = await broker.subscribe(["c"])
    for i in range(1500):
        await broker.publish("c", {"i": i})
    assert sub.dropped == 500
    assert (await sub.get())[1] == {"i": 500}


async def test_failed_redis_subscribe_does_not_poison_the_channel(redis_url: str) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from rtc_server.broker.redis import BrokerUnavailable

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
            await broker.subscribe([ch])
        sub = await broker.subscribe([ch])
        assert calls == 2, "the second subscriber must send SUBSCRIBE again"
        await asyncio.sleep(0.05)
        await broker.publish(ch, {"ok": True})
        assert await asyncio.wait_for(sub.get(), 5) == (ch, {"ok": True})
    finally:
        await broker.close()
