"""Tables of background jobs (migration 0010).

- ``Presence``: which users have an open page (a connected socket) on which
  instance. Each instance writes its own rows (``jobs.presence``) and
  refreshes ``seen_at`` on a heartbeat; a row whose instance stopped
  refreshing is ignored after a few heartbeats, so a crashed instance never
  hides a user from their notices for long.
- ``NoticeDigest``: one batched notice ("You have a new message in the
  portal") waiting for its delay to end. At most one *pending* digest per
  user and kind (a partial unique index): a burst of messages joins the
  waiting one instead of adding more. Claimed in the database when due, so
  with several instances each is sent once.

No ``from __future__ import annotations``: SQLModel reads the real annotations.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, text
from sqlmodel import Field, SQLModel

_PENDING = text("status = 'pending'")


class DigestStatus(enum.StrEnum):
    pending = "pending"
    sent = "sent"
    #: Not needed when due: the user had opened a page, or read what was new.
    skipped = "skipped"


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class Presence(SQLModel, table=True):
    __tablename__ = "presence"

    instance_id: str = Field(sa_column=Column(String(32), primary_key=True))
    user_id: int = Field(sa_column=Column(
        Integer, ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True, index=True))
    seen_at: datetime | None = _ts(nullable=False)


class NoticeDigest(SQLModel, table=True):
    __tablename__ = "notice_digest"
    __table_args__ = (
        Index("uq_notice_digest_pending", "user_id", "kind", unique=True,
              sqlite_where=_PENDING, postgresql_where=_PENDING),
        Index("ix_notice_digest_status_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(
        Integer, ForeignKey("user_account.id", ondelete="CASCADE"), nullable=False))
    #: What the notice is about (``new_message``); the text never says more.
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    status: str = Field(default=DigestStatus.pending, sa_column=Column(String(16), nullable=False))
    #: The first event it covers: what the user read since then decides whether it goes.
    first_at: datetime | None = _ts(nullable=False)
    due_at: datetime | None = _ts(nullable=False)
    claimed_by: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    claimed_at: datetime | None = _ts()
    done_at: datetime | None = _ts()
    #: How it ended: ``email``, ``sms``, ``email+sms``, ``present``, ``read``, ``no_channel``.
    outcome: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
