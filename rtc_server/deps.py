"""``Deps``: what services and handlers need from the running app, built once
in the lifespan and kept on ``app.state.deps`` (``call.deps`` in handlers).
No module globals: tests build as many apps as they like.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from rtc_server.broker.base import Broker
from rtc_server.config import Settings
from rtc_server.db import SessionFactory, utcnow
from rtc_server.notify.email import Mailer
from rtc_server.notify.outbox import MailWorker

#: The current time, aware UTC.
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Deps:
    settings: Settings
    session_factory: SessionFactory
    broker: Broker
    mailer: Mailer
    mail_worker: MailWorker
    clock: Clock = field(default=utcnow)
