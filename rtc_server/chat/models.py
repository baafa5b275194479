"""Tables of secure messaging (migration 0005).

- ``Conversation``: between one patient and the clinic's care team. ``provider_id``
  is the patient's care-team provider when it was started (the practitioner the
  patient's record names as primary); ``routed_to_id`` is the provider answering
  it now (staff route it). ``last_seq`` is the highest message sequence handed
  out: messages are numbered 1, 2, 3 … per conversation, with no gaps, under the
  conversation row's lock in the committing transaction (``chat.writer``).
- ``Member``: one person's state in a conversation: how far they have read
  (receipts, unread counts) and whether they archived it. A row appears when
  somebody starts, is routed, or first opens the conversation; access itself
  follows the care-team rule in ``chat.access``, not these rows.
- ``Message``: append-only; part of the record (patients archive, never delete).
  UNIQUE(sender_id, client_id) makes a resend a no-op, UNIQUE(conversation_id,
  seq) makes a duplicate or reordered sequence impossible. ``attachments`` is
  the JSON list of the files it carries (id, name, type, size), written with
  the message (migration 0010): delivery reads one row per message, and a
  message never changes.
- ``Attachment``: an uploaded file (image or PDF, type judged by its bytes),
  stored under ``data_dir/attachments/<key>`` (a random name, never the
  user's). Owned by its uploader until a message carries it
  (``message_id``); from then on the conversation's care-team rule decides
  who may download it. Unused uploads are swept after a while.
- ``Conversation.refill_request_id``: a ``refill`` conversation started with
  the structured refill form carries its request (shown as a card with the
  request's live status).

Categories and states are stored as short strings (no database enum types:
adding a category is then a code change, not a migration).

No ``from __future__ import annotations`` here: SQLModel resolves column types
from the real annotations.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

#: Longest client message id (the client's own idempotency key).
CLIENT_ID_MAX = 64
SUBJECT_MAX = 120


class Category(enum.StrEnum):
    question = "question"  # a non-urgent medical question
    refill = "refill"  # prescription refill request
    appointment = "appointment"
    billing = "billing"
    other = "other"
    #: A video visit's in-call chat (``rooms.visitchat``; ``Conversation.visit_id`` set).
    visit = "visit"


class Status(enum.StrEnum):
    open = "open"
    closed = "closed"


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


def _fk(table: str, *, nullable: bool = True, ondelete: str = "CASCADE", index: bool = True) -> Any:
    return Field(
        default=None,
        sa_column=Column(Integer, ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable,
                         index=index),
    )


class Conversation(SQLModel, table=True):
    __tablename__ = "chat_conversation"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = _fk("patient", nullable=False)
    provider_id: int | None = _fk("practitioner", ondelete="SET NULL", index=False)
    routed_to_id: int | None = _fk("practitioner", ondelete="SET NULL")
    category: Category = Field(sa_column=Column(String(16), nullable=False))
    subject: str = Field(max_length=SUBJECT_MAX)
    status: Status = Field(default=Status.open, sa_column=Column(String(16), nullable=False))
    created_by: int | None = _fk("user_account", ondelete="SET NULL", index=False)
    created_at: datetime | None = _ts(nullable=False)
    last_seq: int = 0
    last_message_at: datetime | None = _ts(index=True)
    closed_at: datetime | None = _ts()
    #: UNIQUE: one conversation per refill request.
    refill_request_id: int | None = Field(default=None, sa_column=Column(
        Integer, ForeignKey("refill_request.id", ondelete="SET NULL"), nullable=True, unique=True))
    #: The video visit whose in-call chat this is (migration 0009). Such a conversation is
    #: no inbox's: only the visit's admitted participants reach it, through the visit API.
    visit_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("visit.id", ondelete="CASCADE"),
                                       nullable=True, unique=True))


class Member(SQLModel, table=True):
    __tablename__ = "chat_member"
    __table_args__ = (UniqueConstraint("conversation_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = _fk("chat_conversation", nullable=False, index=False)
    user_id: int = _fk("user_account", nullable=False)
    last_read_seq: int = 0
    last_delivered_seq: int = 0
    archived: bool = False
    joined_at: datetime | None = _ts(nullable=False)


class Message(SQLModel, table=True):
    __tablename__ = "chat_message"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        UniqueConstraint("sender_id", "client_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = _fk("chat_conversation", nullable=False, index=False)
    seq: int
    sender_id: int = _fk("user_account", nullable=False, ondelete="RESTRICT", index=False)
    client_id: str = Field(max_length=CLIENT_ID_MAX)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime | None = _ts(nullable=False)
    #: JSON list of ``{id, name, content_type, size}``; NULL for a text-only message.
    attachments: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Attachment(SQLModel, table=True):
    __tablename__ = "chat_attachment"

    id: int | None = Field(default=None, primary_key=True)
    #: The file's name on disk (random hex); never shown, never the user's name.
    key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    #: SET NULL: deleting an account never drops a file from someone's record; its
    #: unsent uploads (no message) are left for the sweeper.
    uploader_id: int | None = _fk("user_account", ondelete="SET NULL")
    conversation_id: int | None = _fk("chat_conversation")
    message_id: int | None = _fk("chat_message")
    #: The name the uploader gave it (shown as text, offered as the download's name).
    name: str = Field(sa_column=Column(String(200), nullable=False))
    #: Judged from the bytes (magic numbers), never from the client.
    content_type: str = Field(sa_column=Column(String(64), nullable=False))
    size: int
    created_at: datetime | None = _ts(nullable=False, index=True)
