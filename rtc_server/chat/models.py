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
  seq) makes a duplicate or reordered sequence impossible.

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
