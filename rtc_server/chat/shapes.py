"""What the messaging API reads and answers (pydantic). Bodies are text: the
server never interprets them, and pages insert them as text, never as HTML."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, model_validator

from rtc_server.auth.models import Role
from rtc_server.chat.models import CLIENT_ID_MAX, SUBJECT_MAX, Category, Status
from rtc_server.portal.refills.shapes import RefillOut
from rtc_server.types import DbId

#: Longest message, in characters. Longer text gets a 422 (HTTP) or a
#: ``too_long`` error frame (socket) that says so; nothing is stored.
MAX_BODY_CHARS = 4000
#: Characters a message may not hold (tab, line feed and carriage return are fine).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CLIENT_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


class TooLong(ValueError):
    """A body over ``MAX_BODY_CHARS`` (the socket answers ``too_long`` for it)."""


def check_body(value: str) -> str:
    """The message rule: not blank, at most MAX_BODY_CHARS, no control characters."""
    if not value.strip():
        raise ValueError("Write a message first.")
    if len(value) > MAX_BODY_CHARS:
        raise TooLong(f"A message can be at most {MAX_BODY_CHARS} characters; "
                      f"this one has {len(value)}. Split it into several messages.")
    if _CONTROL.search(value):
        raise ValueError("Must not contain control characters.")
    return value


def _subject(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError("Give the message a subject.")
    return value


#: A message body (the same rule over HTTP and on the socket).
Body = Annotated[str, Field(max_length=MAX_BODY_CHARS * 4), AfterValidator(check_body)]
#: The sender's own id for a message, so a resend is stored once (letters, digits, ``_.:-``).
ClientId = Annotated[str, Field(min_length=1, max_length=CLIENT_ID_MAX, pattern=_CLIENT_ID)]
Subject = Annotated[str, Field(max_length=SUBJECT_MAX * 2), AfterValidator(_subject)]
Seq = Annotated[int, Field(ge=0, le=2**31 - 1)]
#: Files one message may carry at most.
MAX_ATTACHMENTS = 5
#: Uploads a message carries (ids from ``POST /conversations/attachments``).
AttachmentIds = Annotated[list[DbId], Field(default_factory=list, max_length=MAX_ATTACHMENTS)]


def _text_or_files(body: str, attachments: list[int]) -> None:
    """A message with files may have no text; otherwise the text rule applies."""
    if body or not attachments:
        check_body(body)


# --- input -----------------------------------------------------------------------

class StartIn(BaseModel):
    category: Category
    subject: Subject
    body: Body
    client_id: ClientId
    #: Providers and staff start a conversation with a patient; patients leave it out.
    patient_id: DbId | None = None
    attachments: AttachmentIds
    #: A ``refill`` conversation may carry the patient's refill request (made first
    #: with ``POST /refills``): the thread then shows it with its live status.
    refill_request_id: DbId | None = None


class SendIn(BaseModel):
    #: The text; may be empty when the message carries attachments.
    body: Annotated[str, Field(max_length=MAX_BODY_CHARS * 4)] = ""
    client_id: ClientId
    attachments: AttachmentIds

    @model_validator(mode="after")
    def _needs_text_or_files(self) -> SendIn:
        try:
            _text_or_files(self.body, self.attachments)
        except ValueError as exc:
            from pydantic_core import PydanticCustomError

            raise PydanticCustomError("body", str(exc)) from None
        return self


class ReadIn(BaseModel):
    #: Everything up to and including this sequence has been read.
    seq: Seq


class RouteIn(BaseModel):
    #: The practitioner (provider) who should answer from now on.
    provider_id: DbId


class UploadQuery(BaseModel):
    #: The file's name as the uploader knows it (shown as text; never used on disk).
    name: Annotated[str, Field(min_length=1, max_length=255)]


class ListQuery(BaseModel):
    archived: bool = False
    status: Status | None = None
    limit: int = Field(default=50, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=100_000)


class MessagesQuery(BaseModel):
    """A page of messages in sequence order: the newest ``limit`` by default,
    those after ``after`` (catching up) or before ``before`` (older history)."""

    after: Seq | None = None
    before: Seq | None = None
    limit: int = Field(default=50, ge=1, le=200)


# --- output ----------------------------------------------------------------------

class PersonRef(BaseModel):
    id: int
    name: str


class ConversationSummary(BaseModel):
    id: int
    category: Category
    subject: str
    status: Status
    patient: PersonRef
    #: The provider answering it now (None until staff route it, if the patient has none).
    provider: PersonRef | None
    last_seq: int
    last_message_at: datetime | None
    #: Messages from others after your last read one.
    unread: int
    archived: bool


class ConversationList(BaseModel):
    conversations: list[ConversationSummary]
    #: Unread messages over all your conversations (the tab's badge).
    unread_total: int


class MemberOut(BaseModel):
    user_id: int
    name: str
    role: Role
    #: Read receipts: this person has read every message up to this sequence.
    last_read_seq: int
    #: Delivery receipts: this person's device has received up to this sequence.
    last_delivered_seq: int


class ConversationOut(ConversationSummary):
    created_at: datetime
    closed_at: datetime | None
    members: list[MemberOut]
    #: The refill request this conversation carries, as it stands now.
    refill: RefillOut | None = None


class AttachmentOut(BaseModel):
    """An uploaded file as pages see it; ``name`` is text (the uploader's name
    for it, with an extension that matches its bytes)."""

    id: int
    name: str
    content_type: str
    size: int


class MessageOut(BaseModel):
    id: int
    conversation_id: int
    seq: int
    sender_id: int
    sender_name: str
    sender_role: Role
    client_id: str
    body: str
    sent_at: datetime
    attachments: list[AttachmentOut] = []


class MessagesOut(BaseModel):
    messages: list[MessageOut]
    last_seq: int
    #: Older (or, with ``after``, newer) messages remain beyond this page.
    more: bool


class SentOut(BaseModel):
    id: int
    conversation_id: int
    seq: int
    client_id: str
    sent_at: datetime


class StartedOut(BaseModel):
    conversation: ConversationOut
    message: SentOut


class ReadOut(BaseModel):
    conversation_id: int
    last_read_seq: int


class UnreadOut(BaseModel):
    total: int
    conversations: int


class CategoryOut(BaseModel):
    value: Category
    label: str
    hint: str


class ComposeInfoOut(BaseModel):
    """What the New Message page shows before anything is sent."""

    categories: list[CategoryOut]
    reply_time: str
    emergency_notice: str
    emergency_number: str
    max_chars: int
    #: The largest file a message may carry, in bytes, and the kinds accepted.
    attachment_max_bytes: int
    attachment_types: list[str]


class ProviderOut(BaseModel):
    id: int
    name: str
    specialty: str | None
