"""Publish/subscribe between server instances.

``create_broker(settings)`` gives the in-process broker when ``RTC_REDIS_URL``
is unset, else the Redis one. Delivery is at-most-once: the database, not the
broker, is the record; clients catch up from the database on reconnect (a
broker that had to reconnect says so through ``on_gap``).
"""

from __future__ import annotations

from rtc_server.broker.base import Broker, BrokerUnavailable, Event, Inbox, Listener, Subscription
from rtc_server.broker.memory import MemoryBroker
from rtc_server.config import Settings

__all__ = [
    "Broker", "BrokerUnavailable", "Event", "Inbox", "Listener", "MemoryBroker", "Subscription",
    "create_broker",
]


def create_broker(settings: Settings) -> Broker:
    if settings.redis_url:
        from rtc_server.broker.redis import RedisBroker

        return RedisBroker(settings.redis_url)
    return MemoryBroker()
