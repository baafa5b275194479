"""Rate limits kept in the database, so every instance sees the same counts.

Keys name what is limited, e.g. ``login:user:<normalized username>`` or
``register:ip:<address>``; they hold no secrets (hash anything sensitive,
such as an email address, before using it in a key).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import delete
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import RateCounter
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import RateLimited


def key_for(kind: str, value: str) -> str:
    """A throttle key that does not store ``value`` itself."""
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


async def current(db: AsyncSession, key: str, window_seconds: int) -> int:
    row = await db.get(RateCounter, key)
    if row is None:
        return 0
    start = as_utc(row.window_start)
    if start is None or utcnow() - start > timedelta(seconds=window_seconds):
        return 0
    return row.count


async def hit(db: AsyncSession, key: str, *, limit: int, window_seconds: int) -> int:
    """Count one attempt; raise RateLimited once ``limit`` is exceeded in the window.

    Commits on its own so a throttled attempt still counts even if the
    caller's transaction is rolled back.
    """
    now = utcnow()
    for _ in range(3):
        row = await db.get(RateCounter, key, with_for_update=True)
        if row is None:
            row = RateCounter(key=key, window_start=now, count=1)
            db.add(row)
        else:
            start = as_utc(row.window_start)
            if start is None or now - start > timedelta(seconds=window_seconds):
                row.window_start, row.count = now, 1
            else:
                row.count += 1
            db.add(row)
        try:
            await db.commit()
            break
        except IntegrityError:
            await db.rollback()
    if row.count > limit:
        start = as_utc(row.window_start) or now
        retry = max(1, int(window_seconds - (now - start).total_seconds()))
        raise RateLimited(retry_after=retry)
    return row.count


async def reset(db: AsyncSession, key: str) -> None:
    await db.exec(delete(RateCounter).where(RateCounter.key == key))  # type: ignore[arg-type]
