"""Server-side sessions: create at sign-in, load per request, end on log-out.

A session ends when it has been idle for ``session_idle_seconds`` or reaches
``session_absolute_seconds`` since sign-in, whichever is first. The cookie
itself is set by the transport (``auth.cookies``).

Ending sessions announces ``{"kind": "session_check"}`` on ``user:<id>``
after the commit (``notify.events``), so every path that ends a session
(log-out, sign-in replacing a session, password change or reset, two-factor
on, role change, "end this session") closes that user's sockets at once, and
every instance's ``SessionCache`` forgets that user's sessions
(``sessions_changed``; a change to what a session may do without ending it,
such as a role change, calls it too).

The per-request check (``session_actor``) first asks the instance's
``SessionCache`` (``auth.session_cache``: why trusting it is safe), then the
database.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.audit_writer import WRITER_INFO, AuditWriter
from rtc_server.auth.actor import Actor, RequestMeta
from rtc_server.auth.models import AuthSession, Role, SessionStage, User
from rtc_server.auth.session_cache import SessionCache
from rtc_server.auth.tokens import new_token, token_hash
from rtc_server.config import Settings
from rtc_server.db import after_commit, as_utc, utcnow
from rtc_server.notify.events import SESSION_CHECK_EVENT, announce, user_channel

#: ``make_session_factory(engine, **{SESSION_CACHE_INFO: cache})``: the instance's ``SessionCache``.
SESSION_CACHE_INFO = "rtc.session_cache"

#: Don't write last_seen_at more often than this (one UPDATE per request is waste).
TOUCH_EVERY = timedelta(seconds=15)


def session_cookie_name(settings: Settings) -> str:
    return "__Host-rtc_session" if settings.secure_cookies else "rtc_session"



async def create_session(
    db: AsyncSession, user: User, stage: SessionStage, meta: RequestMeta, settings: Settings
) -> str:
    """Add a new session for ``user`` (the caller commits); returns the cookie token."""
    token = new_token()
    now = utcnow()
    db.add(
        AuthSession(
            id=token_hash(token), public_id=secrets.token_hex(8), user_id=user.id or 0,
            stage=stage, created_at=now, last_seen_at=now,
            expires_at=now + timedelta(seconds=settings.session_absolute_seconds),
            ip=meta.ip, user_agent=meta.user_agent,
        )
    )
    return token


def is_live(sess: AuthSession, settings: Settings, now: datetime) -> bool:
    if sess.ended_at is not None:
        return False
    last_seen = as_utc(sess.last_seen_at)
    expires = as_utc(sess.expires_at)
    assert last_seen is not None and expires is not None
    return now < expires and now < last_seen + timedelta(seconds=settings.session_idle_seconds)


async def load_session(
    db: AsyncSession, token: str | None, settings: Settings, *, touch: bool = True
) -> tuple[AuthSession, User] | None:
    """The live session for a cookie token and its active user, or None.

    A request counts as activity and pushes the idle deadline forward.
    """
    if not token or len(token) > 128:
        return None
    row = (
        await db.exec(
            select(AuthSession, User)
            .join(User, col(User.id) == col(AuthSession.user_id))
            .where(AuthSession.id == token_hash(token))
        )
    ).first()
    if row is None:
        return None
    sess, user = row
    now = utcnow()
    if not is_live(sess, settings, now) or user.status != "active":
        return None
    last_seen = as_utc(sess.last_seen_at)
    if touch and last_seen is not None and now - last_seen > TOUCH_EVERY:
        sess.last_seen_at = now
        db.add(sess)
        await db.commit()
    return sess, user


@functools.cache
def _actor_query() -> Any:
    """The columns an ``Actor`` and the liveness rules need, by ``:token_hash``
    (a plain row, no ORM objects; built once)."""
    return (
        select(AuthSession.id, AuthSession.stage, AuthSession.ended_at, AuthSession.last_seen_at,
               AuthSession.expires_at, AuthSession.user_id, User.username, User.role,
               User.patient_id, User.status)
        .join(User, col(User.id) == col(AuthSession.user_id))
        .where(col(AuthSession.id) == bindparam("token_hash", type_=String))
    )


@functools.cache
def _touch_query() -> Any:
    return (
        update(AuthSession).where(col(AuthSession.id) == bindparam("session_id", type_=String))
        .values(last_seen_at=bindparam("now"))
        .execution_options(synchronize_session=False)
    )


async def session_actor(
    db: AsyncSession | Callable[[], AsyncSession], token: str | None, settings: Settings,
    request_meta: RequestMeta, *, touch: bool = True, cache: SessionCache | None = None,
    writer: AuditWriter | None = None,
) -> Actor | None:
    """``load_session``'s rules on plain columns (the per-request check of every
    API route): the actor of the live session for a cookie token, or None.

    The row comes from ``cache`` (default: the one in ``db.info``) when it may be
    believed, else from one SELECT. Activity is written at most every
    ``TOUCH_EVERY`` and committed before this returns (through ``writer``, default:
    the one in ``db.info``, batched with other requests' writes). ``db`` may be a
    function that opens the session: it is called only if the database is needed."""
    if not token or len(token) > 128:
        return None
    if callable(db):
        opened: Callable[[], AsyncSession] = db
    else:
        session = db

        def opened() -> AsyncSession:
            return session

        if cache is None:
            cache = session.info.get(SESSION_CACHE_INFO)
    session_id = token_hash(token)
    now = utcnow()
    row: Any = cache.get(session_id) if cache is not None else None
    read_db = False
    if row is None or row.status != "active" or not is_live(row, settings, now):
        # Core on the session's connection: plain columns need none of the ORM's execution path.
        ticket = cache.ticket() if cache is not None else None
        read_db = True
        conn = await opened().connection()
        row = (await conn.execute(_actor_query(), {"token_hash": session_id})).first()
        if row is None or row.status != "active" or not is_live(row, settings, now):
            return None
        if cache is not None and ticket is not None:
            cache.put(ticket, row, last_seen_at=as_utc(row.last_seen_at))  # type: ignore[arg-type]
    last_seen = as_utc(row.last_seen_at)
    if touch and last_seen is not None and now - last_seen > TOUCH_EVERY:
        if writer is None:
            writer = opened().info.get(WRITER_INFO)
        if writer is not None and writer.running:  # batched with other requests' writes
            if read_db or not callable(db):
                await opened().rollback()  # nothing written: hand the connection back while waiting
            await writer.touch(row.id, now)
        else:
            db = opened()
            await db.exec(_touch_query(), params={"session_id": row.id, "now": now})  # type: ignore[call-overload]
            await db.commit()
        if cache is not None:
            cache.touched(row.id, now)
    return Actor(user_id=row.user_id, username=row.username, role=Role(row.role),
                 patient_id=row.patient_id, session_id=row.id, stage=SessionStage(row.stage),
                 meta=request_meta)


def sessions_changed(db: AsyncSession, user_id: int) -> None:
    """After ``db`` commits, tell every instance that ``user_id``'s sessions
    changed (ended, or now allow something else): their sockets re-check, and
    each instance's ``SessionCache`` forgets them (this one at once, the others
    when the broker's event arrives)."""
    cache = db.info.get(SESSION_CACHE_INFO)
    if cache is not None:
        async def drop() -> None:
            cache.drop_user(user_id)

        after_commit(db, drop)
    announce(db, user_channel(user_id), SESSION_CHECK_EVENT)


async def end_session(db: AsyncSession, session_id: str) -> None:
    """End one session (the caller commits; its user's sockets re-check then)."""
    result = await db.exec(  # type: ignore[call-overload]
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.ended_at).is_(None))
        .values(ended_at=utcnow())
        .returning(col(AuthSession.user_id))
        .execution_options(synchronize_session=False)
    )
    for user_id in set(result.scalars().all()):
        sessions_changed(db, user_id)


async def end_user_sessions(db: AsyncSession, user_id: int, *, keep: str | None = None) -> None:
    """End every live session of a user except ``keep`` (the caller commits;
    the user's sockets re-check then)."""
    stmt = update(AuthSession).where(
        col(AuthSession.user_id) == user_id, col(AuthSession.ended_at).is_(None)
    )
    if keep is not None:
        stmt = stmt.where(col(AuthSession.id) != keep)
    await db.exec(  # type: ignore[call-overload]
        stmt.values(ended_at=utcnow()).execution_options(synchronize_session=False)
    )
    sessions_changed(db, user_id)
