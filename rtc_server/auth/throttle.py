"""Rate limits kept in the database, so every instance sees the same counts.

Keys name what is limited, e.g. ``login:user:<keyed hash>`` or
``register:ip:<keyed hash>``. Anything a person typed goes through
``key_for``, an HMAC keyed by the server secret: people type passwords into
username fields, and a plain hash of one is a dictionary look-up away.

Guarantees:

- ``count``/``hit`` are one atomic statement (``INSERT … ON CONFLICT DO UPDATE
  … RETURNING``, the window restarting in the same statement) on a connection
  of their own, committed at once. Parallel requests each get a distinct
  count, and an attempt stays counted whatever happens to the caller's
  transaction. Callers count an attempt *before* doing the work it guards and
  decide from the returned count; ``refund`` gives back one that turned out
  fine.
- ``reset`` is an atomic ``UPDATE count = 0`` in the caller's transaction (it
  never deletes a row another request may be counting on).

Because counting writes on another connection, call it before the caller's
session has written anything: on SQLite it would otherwise wait for the
caller's own write lock (and on any backend hold two pooled connections).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, literal, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import RateCounter
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import RateLimited

_table = RateCounter.__table__  # type: ignore[attr-defined]


def key_for(kind: str, value: str, secret: bytes | str) -> str:
    """A throttle key (or audit resource) that neither stores ``value`` nor
    lets anyone without ``secret`` test guesses against it."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}:{digest[:32]}"


def engine_of(db: AsyncSession) -> AsyncEngine:
    """The engine a request's session is bound to (counting uses its own connection)."""
    bind = db.bind
    if not isinstance(bind, AsyncEngine):
        raise TypeError("throttle needs a session bound to an AsyncEngine")
    return bind


@dataclass(frozen=True)
class Count:
    count: int
    retry_after: int


async def count(engine: AsyncEngine, key: str, *, window_seconds: int) -> Count:
    """Count one attempt atomically and return the count in the current window."""
    now = utcnow()
    cutoff = now - timedelta(seconds=window_seconds)
    ts_type = _table.c.window_start.type
    fresh = or_(_table.c.window_start <= literal(cutoff, ts_type), _table.c.count <= 0)
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(_table)
        .values(key=key, window_start=now, count=1)
        .on_conflict_do_update(
            index_elements=[_table.c.key],
            set_={
                "count": case((fresh, 1), else_=_table.c.count + 1),
                "window_start": case((fresh, literal(now, ts_type)), else_=_table.c.window_start),
            },
        )
        .returning(_table.c.count, _table.c.window_start)
    )
    async with engine.begin() as conn:
        value, started = (await conn.execute(stmt)).one()
    start: datetime = as_utc(started) or now
    retry = max(1, int(window_seconds - (now - start).total_seconds()))
    return Count(int(value), retry)


async def hit(engine: AsyncEngine, key: str, *, limit: int, window_seconds: int) -> int:
    """Count one attempt; raise RateLimited when it is beyond ``limit`` in the window."""
    got = await count(engine, key, window_seconds=window_seconds)
    if got.count > limit:
        raise RateLimited(retry_after=got.retry_after)
    return got.count


async def refund(engine: AsyncEngine, key: str) -> None:
    """Give back one counted attempt (it turned out not to be a failure)."""
    async with engine.begin() as conn:
        await conn.execute(
            update(_table).where(_table.c.key == key)
            .values(count=case((_table.c.count > 0, _table.c.count - 1), else_=0))
        )


async def current(db: AsyncSession, key: str, window_seconds: int) -> int:
    """The count in the current window, without counting (a read; may be stale
    by the time the caller acts, so never the only check before guarded work)."""
    row = (
        await db.exec(select(col(RateCounter.count), col(RateCounter.window_start))
                      .where(col(RateCounter.key) == key))
    ).first()
    if row is None:
        return 0
    value, started = row
    start = as_utc(started)
    if start is None or utcnow() - start > timedelta(seconds=window_seconds):
        return 0
    return max(0, int(value))


async def reset(db: AsyncSession, key: str) -> None:
    """Zero a counter in the caller's transaction (the next attempt starts a new window)."""
    await db.exec(update(_table).where(_table.c.key == key).values(count=0))  # type: ignore[call-overload]
