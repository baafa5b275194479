"""``/ws/v1/events``: live notifications for the signed-in user (transport).

Services announce events on ``user:<id>`` (``notify.events.announce``, after
commit, from any instance); this endpoint, built on the shared real-time
layer, forwards them to every socket of that user. Frames are described in
docs/protocol.md. The socket closes with 4401 as soon as its session ends.
Delivery is at-most-once: after ``ready``, on ``resync`` or after a
reconnect, the page refetches what it shows from the API.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role
from rtc_server.chat.ws import with_chat
from rtc_server.notify.events import user_channel
from rtc_server.portal.appointments.events import STAFF_CHANNEL
from rtc_server.realtime import Connection, Endpoint
from rtc_server.ws_errors import MAX_REF


class Ping(BaseModel):
    type: Literal["ping"]
    ref: str | None = Field(default=None, max_length=MAX_REF)


ClientFrame = Annotated[Ping, Field(discriminator="type")]


async def _on_frame(conn: Connection, frame: Ping) -> None:
    conn.send_text(_pong(frame.ref))


def _pong(ref: str | None) -> str:
    return json.dumps({"type": "pong", "ref": ref}, separators=(",", ":"))


def _channels(actor: Actor) -> list[str]:
    if actor.role in (Role.provider, Role.staff):
        # The clinic's schedule: bookings and cancellations show live in the console.
        return [user_channel(actor.user_id), STAFF_CHANNEL]
    return [user_channel(actor.user_id)]


#: The page's one socket: live events, and the messaging frames (docs/messaging.md).
EVENTS = with_chat(Endpoint(
    "/ws/v1/events", frames=TypeAdapter(ClientFrame), on_frame=_on_frame, channels=_channels,
    max_frame_bytes=4096, frames_per_second=20,
))

routes = [EVENTS.route()]

