"""Redis pub/sub broker for several instances.

One Redis connection per instance carries every subscription, and each
channel is subscribed once per instance however many local consumers share
it (``SharedChannels``). A reader task hands incoming messages to the
listeners.

Guarantees and what the caller must do:

- ``subscribe``/``Subscription.add`` return only after Redis confirmed the
  SUBSCRIBE, so a message published after that is delivered.
- When the connection drops, ``healthy`` turns False, the reader reconnects
  with capped exponential backoff and subscribes to every current channel
  again; once Redis has confirmed them it calls each subscription's
  ``on_gap()``. Whatever was published in between is lost (pub/sub is
  at-most-once), so consumers make their clients catch up from the database.
  redis-py's own silent retry/resubscribe is turned off for that reason: a
  reconnect must never go unnoticed.
- Redis errors are translated into ``BrokerUnavailable`` at this boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from rtc_server.broker.base import BrokerUnavailable, Event, SharedChannels, encode

log = logging.getLogger("rtc_server.broker")

#: How long a SUBSCRIBE may take to be confirmed before it counts as failed.
CONFIRM_SECONDS = 5.0
#: Reconnect backoff: first wait, then doubling up to the cap (with jitter).
BACKOFF_FIRST = 0.1
BACKOFF_CAP = 5.0
#: The reader wakes this often when idle, so redis-py can send its health-check PING.
IDLE_READ_SECONDS = 5.0

_CONNECTION_ERRORS = (RedisError, OSError)


class RedisBroker(SharedChannels):
    kind = "redis"

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        #: Futures waiting for a SUBSCRIBE confirmation, in command order per channel.
        self._acks: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._healthy = False

    @property
    def healthy(self) -> bool:
        """False while the subscription connection is down (``/healthz`` says degraded)."""
        return self._healthy

    async def start(self) -> None:
        self._redis = aioredis.from_url(
            self._url, decode_responses=False, retry=Retry(NoBackoff(), 0),
            health_check_interval=15, socket_keepalive=True,
        )
        try:
            await self._redis.ping()
            self._pubsub = await self._open()
        except _CONNECTION_ERRORS as exc:
            await self._redis.aclose()
            raise BrokerUnavailable(f"cannot reach Redis: {type(exc).__name__}") from exc
        self._healthy = True
        self._reader = asyncio.create_task(self._run(), name="redis-broker-reader")

    async def close(self) -> None:
        self._healthy = False
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._fail_acks()
        await self._close_pubsub(self._pubsub)
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, channel: str, event: Event) -> None:
        assert self._redis is not None, "broker not started"
        try:
            await self._redis.publish(channel, encode(event))
        except _CONNECTION_ERRORS as exc:
            raise BrokerUnavailable(f"publish failed: {type(exc).__name__}") from exc

    async def health(self) -> dict[str, Any]:
        ok = self._healthy
        if ok:
            try:
                assert self._redis is not None
                await self._redis.ping()
            except _CONNECTION_ERRORS:
                ok = False
        return {"kind": self.kind, "ok": ok}

    # Subscriptions (called under the SharedChannels lock) ----------------------

    async def _listen(self, channels: list[str]) -> None:
        if not self._healthy:
            raise BrokerUnavailable("Redis is unreachable; reconnecting")
        loop = asyncio.get_running_loop()
        waiting = []
        for ch in channels:
            fut: asyncio.Future[None] = loop.create_future()
            self._acks.setdefault(ch.encode(), deque()).append(fut)
            waiting.append(fut)
        try:
            await self._pubsub.subscribe(*channels)
        except _CONNECTION_ERRORS as exc:
            # Not sent, so no confirmation will come for these.
            for ch, fut in zip(channels, waiting, strict=True):
                queue = self._acks.get(ch.encode())
                if queue is not None and fut in queue:
                    queue.remove(fut)
                    if not queue:
                        del self._acks[ch.encode()]
            raise BrokerUnavailable(f"subscribe failed: {type(exc).__name__}") from exc
        try:
            await asyncio.wait_for(asyncio.gather(*waiting), CONFIRM_SECONDS)
        except TimeoutError as exc:
            raise BrokerUnavailable("subscribe not confirmed in time") from exc

    async def _unlisten(self, channels: list[str]) -> None:
        if self._healthy:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await self._pubsub.unsubscribe(*channels)

    # The reader ---------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._read(self._pubsub)
            except _CONNECTION_ERRORS as exc:
                log.warning("redis broker: connection lost (%s); reconnecting", type(exc).__name__)
            except Exception:
                log.exception("redis broker: the reader failed; reconnecting")
            self._healthy = False
            self._fail_acks()
            await self._close_pubsub(self._pubsub)
            self._pubsub = None
            await self._reconnect()
            self._healthy = True
            log.info("redis broker: subscribed again to %d channel(s)", len(self._subs))
            self._gap()

    async def _read(self, pubsub: Any) -> None:
        """Deliver messages until the connection fails (it raises then)."""
        while True:
            msg = await pubsub.get_message(timeout=IDLE_READ_SECONDS)
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "message":
                try:
                    data = msg["data"].decode()
                    channel = msg["channel"].decode()
                except UnicodeDecodeError:
                    log.warning("redis broker: dropped a message that is not UTF-8")
                    continue
                self._deliver(channel, data)
            elif kind == "subscribe":
                self._confirm(msg["channel"])

    def _confirm(self, channel: bytes) -> None:
        waiting = self._acks.get(channel)
        if not waiting:
            return  # a resubscription made by _reconnect, which counts its own
        fut = waiting.popleft()
        if not waiting:
            del self._acks[channel]
        if not fut.done():
            fut.set_result(None)

    async def _reconnect(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            await asyncio.sleep(delay * random.uniform(0.75, 1.25))
            delay = min(delay * 2, BACKOFF_CAP)
            try:
                self._pubsub = await self._open(resubscribe=True)
                return
            except (*_CONNECTION_ERRORS, TimeoutError) as exc:
                log.warning("redis broker: reconnect failed (%s); next try in %.1f s",
                            type(exc).__name__, delay)

    async def _open(self, *, resubscribe: bool = False) -> Any:
        """A connected pub/sub; with ``resubscribe``, on every current channel
        (confirmed; messages arriving meanwhile are delivered)."""
        assert self._redis is not None
        pubsub = self._redis.pubsub()
        try:
            await pubsub.connect()
            if resubscribe:
                async with self._lock:
                    await self._resubscribe(pubsub, list(self._subs))
        except BaseException:
            await self._close_pubsub(pubsub)
            raise
        return pubsub

    async def _resubscribe(self, pubsub: Any, channels: list[str]) -> None:
        if not channels:
            return
        await pubsub.subscribe(*channels)
        pending = {ch.encode() for ch in channels}
        async with asyncio.timeout(CONFIRM_SECONDS):
            while pending:
                msg = await pubsub.get_message(timeout=CONFIRM_SECONDS)
                if msg is None:
                    continue
                if msg["type"] == "subscribe":
                    pending.discard(msg["channel"])
                elif msg["type"] == "message":
                    self._deliver(msg["channel"].decode(), msg["data"].decode())

    def _fail_acks(self) -> None:
        for waiting in self._acks.values():
            for fut in waiting:
                if not fut.done():
                    fut.set_exception(BrokerUnavailable("Redis connection lost"))
                    fut.exception()  # retrieved: nobody may be waiting any more
        self._acks.clear()

    @staticmethod
    async def _close_pubsub(pubsub: Any) -> None:
        if pubsub is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await pubsub.aclose()
