"""Live events: channel names, event shapes and ``announce``.

Services announce what happened inside their transaction::

    announce(db, user_channel(user_id), {"kind": "appointment", "id": 12})
    await db.commit()   # published on the broker now; dropped on rollback

so no route has to remember to publish, and nothing is published for work
that did not commit. Events carry ids only, never health data; clients fetch
details through the API. Delivery is at-most-once (the database is the
record): a client that reconnects catches up from the database.

Channels are per user, conversation or room, never global (see DESIGN.md).

``{"kind": "session_check"}`` on ``user:<id>`` means "one of this user's
sessions ended: every socket of this user re-checks its session now"; the
socket layer consumes it and does not forward it to clients.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.broker.base import BrokerUnavailable, Event
from rtc_server.db import after_commit

log = logging.getLogger("rtc_server.events")

#: ``make_session_factory(engine, **{BROKER_INFO: broker})``: where sessions publish.
BROKER_INFO = "rtc.broker"

SESSION_CHECK = "session_check"
SESSION_CHECK_EVENT: Event = {"kind": SESSION_CHECK}


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


def conversation_channel(conversation_id: int) -> str:
    return f"conv:{conversation_id}"


def room_channel(room_id: int) -> str:
    return f"room:{room_id}"


def announce(db: AsyncSession, channel: str, event: Event) -> None:
    """Publish ``event`` on ``channel`` once ``db``'s transaction commits.

    A session with no broker (CLI, a test's own factory) drops the event after
    commit: there is nobody in that process to tell."""
    broker = db.info.get(BROKER_INFO)
    payload: dict[str, Any] = dict(event)

    async def publish() -> None:
        if broker is None:
            return
        try:
            await broker.publish(channel, payload)
        except BrokerUnavailable:
            log.warning("could not publish a %s event; clients catch up on reconnect",
                        payload.get("kind"))

    after_commit(db, publish)
