"""Redis pub/sub broker for several instances.

One Redis connection per instance carries every subscription; a reader task
fans incoming messages out to local subscriptions, so a thousand sockets cost
one Redis subscription per channel, not one connection each. Redis errors are
translated into ``BrokerUnavailable`` at this boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rtc_server.broker.base import BrokerUnavailable, Event, Subscription

log = logging.getLogger("rtc_server.broker")


class RedisBroker:
    def __init__(self, url: str) -> None:
        self._url = url
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._redis = aioredis.from_url(self._url, decode_responses=False)
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise BrokerUnavailable(f"cannot reach Redis: {type(exc).__name__}") from exc
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError):
                await self._pubsub.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, channel: str, event: Event) -> None:
        assert self._redis is not None, "broker not started"
        try:
            await self._redis.publish(channel, json.dumps(event, separators=(",", ":")))
        except RedisError as exc:
            raise BrokerUnavailable(f"publish failed: {type(exc).__name__}") from exc

    async def subscribe(self, channels: Iterable[str]) -> Subscription:
        sub = Subscription((), on_close=self._remove)
        await self.add_channels(sub, channels)
        return sub

    async def add_channels(self, sub: Subscription, channels: Iterable[str]) -> None:
        new: list[str] = []
        async with self._lock:
            for ch in channels:
                sub.channels.add(ch)
                if not self._subs[ch]:
                    new.append(ch)
                self._subs[ch].add(sub)
            if new:
                try:
                    await self._pubsub.subscribe(*new)
                except RedisError as exc:
                    # Undo, or the channel would look subscribed forever and the
                    # next subscriber would never send SUBSCRIBE.
                    for ch in new:
                        self._subs[ch].discard(sub)
                        sub.channels.discard(ch)
                        if not self._subs[ch]:
                            del self._subs[ch]
                    raise BrokerUnavailable(f"subscribe failed: {type(exc).__name__}") from exc

    async def _remove(self, sub: Subscription) -> None:
        gone: list[str] = []
        async with self._lock:
            for ch in sub.channels:
                subs = self._subs.get(ch)
                if subs is None:
                    continue
                subs.discard(sub)
                if not subs:
                    del self._subs[ch]
                    gone.append(ch)
            if gone:
                with contextlib.suppress(RedisError):
                    await self._pubsub.unsubscribe(*gone)

    async def _read(self) -> None:
        while True:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                msg = await self._pubsub.get_message(timeout=1.0)
            except RedisError:
                log.warning("redis broker: connection lost; retrying")
                await asyncio.sleep(0.5)
                continue
            if msg is None or msg.get("type") != "message":
                continue
            channel = msg["channel"].decode()
            try:
                event = json.loads(msg["data"])
            except ValueError:
                log.warning("redis broker: dropped a malformed event on a channel")
                continue
            for sub in tuple(self._subs.get(channel, ())):
                sub.deliver(channel, event)

    async def health(self) -> dict[str, Any]:
        try:
            assert self._redis is not None
            await self._redis.ping()
            return {"kind": "redis", "ok": True, "channels": len(self._subs)}
        except (RedisError, AssertionError) as exc:
            return {"kind": "redis", "ok": False, "error": type(exc).__name__}
