"""Tables of the Help Desk (migration 0007).

- ``HelpTicket``: one question or problem. Sent signed in, it belongs to the
  account (``user_id``) and replies are read in the portal; sent signed out
  (a log-in problem), it carries the name and email address to reply to and
  replies go by email. ``requester_seen_at`` marks when the requester last
  read it, so a newer staff reply shows as new.
- ``HelpTicketMessage``: the conversation, oldest first; ``from_staff`` tells
  the clinic's replies from the requester's messages.

No ``from __future__ import annotations`` here: SQLModel resolves column types
from the real annotations.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Integer, Text
from sqlmodel import Field, SQLModel


class TicketStatus(enum.StrEnum):
    open = "open"  # waiting for the clinic
    answered = "answered"  # the clinic replied; waiting for the requester, if anything
    closed = "closed"


class TicketTopic(enum.StrEnum):
    login = "login"  # can't sign in, locked out, two-factor
    account = "account"  # registration, contact details, notifications
    technical = "technical"  # a page or a video visit does not work
    appointments = "appointments"
    refills = "refills"
    records = "records"  # medical records and lab results
    other = "other"


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


def _fk(table: str, *, nullable: bool = True, ondelete: str = "SET NULL") -> Any:
    return Field(
        default=None,
        sa_column=Column(Integer, ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable,
                         index=True),
    )


class HelpTicket(SQLModel, table=True):
    __tablename__ = "help_ticket"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = _fk("user_account")
    #: The requester's record, for the audit log's patient column (None for staff or signed out).
    patient_id: int | None = _fk("patient")
    contact_name: str | None = Field(default=None, max_length=200)
    contact_email: str | None = Field(default=None, max_length=320)
    topic: str = Field(max_length=32)
    subject: str = Field(max_length=200)
    status: str = Field(default=TicketStatus.open.value, max_length=16, index=True)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False, index=True)
    closed_at: datetime | None = _ts()
    requester_seen_at: datetime | None = _ts()
    last_staff_reply_at: datetime | None = _ts()


class HelpTicketMessage(SQLModel, table=True):
    __tablename__ = "help_ticket_message"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = _fk("help_ticket", nullable=False, ondelete="CASCADE")
    author_id: int | None = _fk("user_account")
    from_staff: bool = False
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts(nullable=False)
