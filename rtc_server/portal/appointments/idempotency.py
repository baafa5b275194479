"""``Idempotency-Key`` for requests that must not happen twice (booking, rescheduling).

The first successful answer is stored with the key, in the same transaction as
the change it reports, unique per (user, key). A retry with the same key and
the same request gets that stored answer back; the same key with a different
request is refused (422), as is a malformed key. A request that failed stored
nothing, so retrying it runs it again. Keys are kept for ``KEEP``; an older key
may be used afresh.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.db import as_utc
from rtc_server.errors import InvalidInput
from rtc_server.portal.appointments.models import IdempotencyRecord

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


class KeyReused(InvalidInput):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__(HEADER, "This key was already used for a different request. Use a new key.")
        self.message = "This Idempotency-Key was already used for a different request."


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _KEY.match(key):
        raise InvalidInput(HEADER, "Use 1 to 200 visible ASCII characters, such as a UUID.")
    return key


def request_hash(operation: str, body: dict[str, Any]) -> str:
    canonical = json.dumps({"op": operation, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    status_code: int
    response: dict[str, Any]


async def find(db: AsyncSession, user_id: int, key: str, digest: str, now: datetime) -> Replay | None:
    """The stored answer for a retry, None for a new key; KeyReused for a different request."""
    row = (
        await db.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
            )
        )
    ).first()
    if row is None:
        return None
    created = as_utc(row.created_at)
    if created is not None and created < now - KEEP:
        await db.exec(delete(IdempotencyRecord).where(col(IdempotencyRecord.id) == row.id))  # type: ignore[call-overload]
        await db.commit()
        return None
    if row.request_hash != digest:
        raise KeyReused()
    return Replay(row.status_code, dict(row.response))


def remember(
    db: AsyncSession, user_id: int, key: str, digest: str, now: datetime
) -> IdempotencyRecord:
    """Add the key's row to the caller's transaction; fill ``response`` before commit.

    Flush it first: when another request with the same key is in flight, the
    unique (user, key) index makes the flush fail, and the caller replays the
    winner's answer instead of doing the work twice.
    """
    row = IdempotencyRecord(user_id=user_id, key=key, request_hash=digest, created_at=now)
    db.add(row)
    return row


async def purge(db: AsyncSession, now: datetime) -> None:
    await db.exec(  # type: ignore[call-overload]
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < now - KEEP)
    )
