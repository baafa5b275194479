"""Request and response shapes of the Help Desk."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from rtc_server.auth.accounts import normalize_email
from rtc_server.portal.helpdesk.models import TicketStatus, TicketTopic

MESSAGE_MAX = 4000

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200)]
Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=MESSAGE_MAX)]


class TicketIn(BaseModel):
    """A question or problem from someone signed in."""

    model_config = ConfigDict(extra="forbid")
    topic: TicketTopic = TicketTopic.other
    subject: Subject
    message: Message


class PublicTicketIn(TicketIn):
    """From someone who cannot sign in: whom to answer, by email."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)]
    topic: TicketTopic = TicketTopic.login

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        normalized = normalize_email(value)
        if normalized is None:
            raise ValueError("Enter an email address like name@example.org.")
        return normalized


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: Message


class ReplyIn(MessageIn):
    #: Close the ticket with this reply (nothing more to do).
    close: bool = False
    #: Required for a ticket from someone who could not sign in: the reply goes word for
    #: word to an email address nobody verified, so staff confirm it holds no health data.
    no_health_data: bool = False


class PublicTicketOut(BaseModel):
    """What a signed-out sender is told: the reference to quote, and where the reply goes."""

    reference: str
    reply_to: str


class MessageOut(BaseModel):
    id: int
    from_staff: bool
    #: "You" for the requester's own messages on their side; the staff member's name for replies.
    author: str
    body: str
    created_at: datetime


class TicketSummaryOut(BaseModel):
    id: int
    reference: str
    topic: TicketTopic
    subject: str
    status: TicketStatus
    created_at: datetime
    updated_at: datetime
    #: A staff reply the requester has not read yet.
    new_reply: bool


class TicketOut(TicketSummaryOut):
    closed_at: datetime | None
    messages: list[MessageOut]


class RequesterOut(BaseModel):
    """Who asked, as the help desk sees it (never their records)."""

    kind: Literal["account", "email"]
    name: str
    username: str | None
    email: str | None
    role: str | None


class StaffTicketOut(TicketOut):
    requester: RequesterOut


class StaffQueueItem(TicketSummaryOut):
    requester: RequesterOut
    last_staff_reply_at: datetime | None


class StaffQueueQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: ``open``: waiting for the clinic; ``answered``; ``closed``; ``all``.
    status: Literal["open", "answered", "closed", "all"] = "open"
