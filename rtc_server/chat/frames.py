"""Messaging frames on the page's one live socket (docs/messaging.md).

Client → server, a pydantic discriminated union on ``type``; strict (a
number must be a JSON number) and closed (unknown fields are refused), so a
malformed frame is answered ``bad_frame`` naming the field and changes nothing.
Every frame may carry ``ref`` (≤ 64 characters), echoed in its ``ack`` or
``error``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rtc_server.chat.shapes import MAX_BODY_CHARS, ClientId, Seq
from rtc_server.types import DbId
from rtc_server.ws_errors import MAX_REF

Ref = Annotated[str, Field(max_length=MAX_REF)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    ref: Ref | None = None


class SendFrame(_Frame):
    """Store a message (``ack`` once it is stored, or ``error``)."""

    type: Literal["send"]
    conversation_id: DbId
    client_id: ClientId
    #: Checked against the message limit by the handler, which answers ``too_long``.
    body: Annotated[str, Field(max_length=MAX_BODY_CHARS * 4)]


class ResumeFrame(_Frame):
    """Follow a conversation live, starting after ``since`` (0: from the start)."""

    type: Literal["resume"]
    conversation_id: DbId
    since: Seq = 0


class LeaveFrame(_Frame):
    """Stop following a conversation."""

    type: Literal["leave"]
    conversation_id: DbId


class ReadFrame(_Frame):
    """Read receipt: everything up to ``seq`` has been read."""

    type: Literal["read"]
    conversation_id: DbId
    seq: Seq


class DeliveredFrame(_Frame):
    """Delivery receipt: everything up to ``seq`` has reached this device."""

    type: Literal["delivered"]
    conversation_id: DbId
    seq: Seq


class TypingFrame(_Frame):
    """The person is typing (not stored; send at most every few seconds)."""

    type: Literal["typing"]
    conversation_id: DbId


CHAT_FRAMES: tuple[type[_Frame], ...] = (
    SendFrame, ResumeFrame, LeaveFrame, ReadFrame, DeliveredFrame, TypingFrame)
CHAT_TYPES = frozenset(f.model_fields["type"].annotation.__args__[0] for f in CHAT_FRAMES)  # type: ignore[union-attr]

ChatFrame = Annotated[
    SendFrame | ResumeFrame | LeaveFrame | ReadFrame | DeliveredFrame | TypingFrame,
    Field(discriminator="type"),
]
