"""Batched email/SMS notices for people with no open page.

When a message arrives for someone who has no page open on any instance
(``jobs.presence``), a *digest* is scheduled for ``chat_notice_delay_seconds``
later: one pending row per person and kind (a partial unique index), so a
burst of ten messages schedules one notice, not ten. When it is due, one
instance claims it (a conditional UPDATE, ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, as ``notify.outbox`` claims mail) and decides:

- the person has a page open now (they came back during the delay): skipped;
- they have read everything that arrived since the digest began: skipped;
- otherwise, per their ``new_messages`` choice (Account Settings), an email
  through the mail outbox (sent once, after the commit that marks the digest
  sent) and/or a text through the SMS sender, both saying only "You have a new
  message in the portal" and a link: no name, subject or text (health data
  never leaves in a notice).

After a notice went out, the next one waits until the person has been back
(read what it was about), or ``chat_notice_backoff_seconds`` (an hour): a
correspondent cannot cause a notice every delay.

Scheduling is off the message path: the writer hands the recipients to
``offer`` (no I/O), and this module's task checks presence and inserts the
digests in one transaction per round. A claim whose instance died is taken
over after ``mail_claim_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import Role, User, UserStatus
from rtc_server.chat.models import Member, Message
from rtc_server.config import Settings
from rtc_server.db import SessionFactory, after_commit, utcnow
from rtc_server.jobs.models import DigestStatus, NoticeDigest
from rtc_server.jobs.presence import PresenceBoard
from rtc_server.notify.mail import compose
from rtc_server.notify.outbox import queue_mail
from rtc_server.records.models import Patient

log = logging.getLogger("rtc_server.jobs")

KIND_MESSAGE = "new_message"
#: The only thing a notice says.
LINE = "You have a new message in the portal."

_D = NoticeDigest.__table__.c  # type: ignore[attr-defined]
_MB = Member.__table__.c  # type: ignore[attr-defined]
_MSG = Message.__table__.c  # type: ignore[attr-defined]


def _aware(at: datetime, like: datetime) -> datetime:
    return at.replace(tzinfo=like.tzinfo) if at.tzinfo is None else at


class Digests:
    """One per instance (``ChatRuntime.digests``): schedules, claims and sends."""

    def __init__(self, session_factory: SessionFactory, settings: Settings, presence: PresenceBoard, *,
                 clock: Callable[[], datetime] = utcnow, sms_sender: object | None = None) -> None:
        self._factory = session_factory
        self._settings = settings
        self._presence = presence
        self._clock = clock
        self._sms = sms_sender
        self._name = uuid.uuid4().hex[:16]
        #: user id → the time of the earliest new message not yet scheduled.
        self._offered: dict[int, datetime] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Condition()
        self._rounds = 0

    @property
    def delay(self) -> float:
        return self._settings.chat_notice_delay_seconds

    def offer(self, user_ids: Iterable[int], at: datetime) -> None:
        """New messages, stored at ``at``, wait for these people (no I/O: the task
        decides who is away)."""
        fresh = [u for u in user_ids if not self._presence.here(u)]
        for u in fresh:
            self._offered[u] = min(at, self._offered.get(u, at))
        if fresh:
            self._wake.set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="notice-digests")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def settled(self) -> None:
        """Return once nothing is offered or pending in the database: every digest
        scheduled so far was sent or skipped (tests; bound it with a timeout)."""
        while True:
            await self._round()
            await self._round()  # the first may have begun before this call
            if self._offered:
                continue
            async with self._factory() as db:
                waiting = (await db.exec(select(func.count()).select_from(NoticeDigest.__table__)  # type: ignore[arg-type]
                                         .where(_D.status == DigestStatus.pending))).scalar_one()
            if not waiting:
                return
            await asyncio.sleep(min(0.05, self.delay / 4))

    async def settled_scheduling(self) -> None:
        """Return once everything offered so far is scheduled (tests)."""
        while True:
            await self._round()
            await self._round()
            if not self._offered:
                return

    async def _round(self) -> None:
        """Wait for a full round of the task that began after this call."""
        want = self._rounds + 1
        self._wake.set()
        async with self._idle:
            await self._idle.wait_for(lambda: self._rounds >= want)

    # --- the task ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            timeout = await self._next_due_in()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                await self._schedule()
                while await self._claim_and_send():
                    pass
            except Exception:  # keep going; the next round retries
                log.exception("notice digests: a round failed")
                await asyncio.sleep(1.0)
            self._rounds += 1
            async with self._idle:
                self._idle.notify_all()

    async def _next_due_in(self) -> float:
        """Seconds until the earliest pending digest is due (capped, so a digest
        scheduled by another instance is not waited on for ever)."""
        cap = max(0.05, min(self.delay, self._settings.mail_poll_seconds))
        try:
            async with self._factory() as db:
                due = (await db.exec(select(func.min(_D.due_at)).where(
                    _D.status == DigestStatus.pending))).scalar_one_or_none()
        except Exception:
            return cap
        if due is None:
            return cap
        if due.tzinfo is None:
            due = due.replace(tzinfo=self._clock().tzinfo)
        return max(0.0, min(cap, (due - self._clock()).total_seconds()))

    async def _schedule(self) -> None:
        offered, self._offered = self._offered, {}
        if not offered:
            return
        try:
            async with self._factory() as db:
                away = set(offered) - await self._presence.present(db, set(offered))
                if away:
                    now = self._clock()
                    soonest = now + timedelta(seconds=self.delay)
                    held = await self._held_back(db, away, now)
                    make = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
                    stmt = make(NoticeDigest.__table__).values([  # type: ignore[arg-type]
                        {"user_id": u, "kind": KIND_MESSAGE, "status": DigestStatus.pending,
                         "first_at": offered[u], "due_at": max(soonest, held.get(u, soonest))}
                        for u in sorted(away)])
                    # A burst joins the digest already waiting (the partial unique index);
                    # one held back comes forward once the person has been back.
                    await db.exec(stmt.on_conflict_do_update(
                        index_elements=["user_id", "kind"], index_where=_D.status == DigestStatus.pending,
                        set_={"due_at": stmt.excluded.due_at},
                        where=stmt.excluded.due_at < _D.due_at))
                await db.commit()
        except BaseException:
            for u, at in offered.items():
                self._offered[u] = min(at, self._offered.get(u, at))
            raise

    async def _held_back(self, db: AsyncSession, users: set[int], now: datetime) -> dict[int, datetime]:
        """Those among ``users`` told by a notice within ``chat_notice_backoff_seconds``
        who have not been back since (a message from before it is still unread):
        when their next notice may go at the earliest."""
        backoff = self._settings.chat_notice_backoff_seconds
        if backoff <= 0:
            return {}
        last = (select(_D.user_id, func.max(_D.done_at).label("done_at"))
                .where(_D.user_id.in_(sorted(users)), _D.kind == KIND_MESSAGE,
                       _D.status == DigestStatus.sent, _D.done_at > now - timedelta(seconds=backoff))
                .group_by(_D.user_id).subquery())
        rows = (await db.exec(
            select(last.c.user_id, last.c.done_at)
            .where(select(_MSG.id).select_from(Message.__table__.join(  # type: ignore[attr-defined]
                Member.__table__, _MB.conversation_id == _MSG.conversation_id))
                .where(_MB.user_id == last.c.user_id, _MSG.seq > _MB.last_read_seq,
                       _MSG.sender_id != last.c.user_id, _MSG.created_at <= last.c.done_at).exists()))).all()
        return {u: _aware(done, now) + timedelta(seconds=backoff) for u, done in rows}

    async def _claim_and_send(self) -> bool:
        """Claim one due digest and settle it; False when none is due."""
        async with self._factory() as db:
            now = self._clock()
            stale = now - timedelta(seconds=self._settings.mail_claim_seconds)
            free = or_(_D.claimed_at.is_(None), _D.claimed_at < stale)
            ids = list((await db.exec(
                select(_D.id).where(_D.status == DigestStatus.pending, _D.due_at <= now, free)
                .order_by(_D.due_at, _D.id).limit(5).with_for_update(skip_locked=True))).scalars())
            for digest_id in ids:
                claimed = (await db.exec(update(NoticeDigest.__table__).where(  # type: ignore[arg-type]
                    _D.id == digest_id, _D.status == DigestStatus.pending, free)
                    .values(claimed_by=self._name, claimed_at=now))).rowcount
                if claimed == 1:
                    await db.commit()
                    await self._settle(digest_id)
                    return True
            await db.commit()
            return False

    async def _settle(self, digest_id: int) -> None:
        """Decide and send a digest this instance claimed. The status UPDATE,
        guarded by our claim, runs first: if another instance took the claim
        over meanwhile it changes no row and nothing is queued (sent once)."""
        async with self._factory() as db:
            row = await db.get(NoticeDigest, digest_id)
            assert row is not None
            user = await db.get(User, row.user_id)
            outcome = await self._decide(db, row, user)
            mine = and_(_D.id == digest_id, _D.claimed_by == self._name, _D.status == DigestStatus.pending)
            status = DigestStatus.sent if outcome is None else DigestStatus.skipped
            won = (await db.exec(update(NoticeDigest.__table__).where(mine)  # type: ignore[arg-type]
                                 .values(status=status, done_at=self._clock(), outcome=outcome))).rowcount
            if won != 1:
                await db.rollback()
                log.info("notice digest %s: taken over by another instance", digest_id)
                return
            if outcome is None:
                assert user is not None
                outcome = await self._notify(db, user)
                if outcome not in ("email", "sms", "email+sms"):
                    status = DigestStatus.skipped
                await db.exec(update(NoticeDigest.__table__).where(  # type: ignore[arg-type]
                    _D.id == digest_id).values(status=status, outcome=outcome))
            await db.commit()
        log.info("notice digest %s: %s", digest_id, outcome)

    async def _decide(self, db: AsyncSession, row: NoticeDigest, user: User | None) -> str | None:
        """Why this digest need not go (None: it goes)."""
        if user is None or user.status != UserStatus.active:
            return "no_account"
        if await self._presence.present(db, {user.id or 0}):
            return "present"
        unread = (await db.exec(
            select(func.count()).select_from(Message.__table__)  # type: ignore[arg-type]
            .join(Member.__table__, and_(_MB.conversation_id == _MSG.conversation_id,  # type: ignore[arg-type]
                                         _MB.user_id == user.id))
            .where(_MSG.seq > _MB.last_read_seq, _MSG.sender_id != user.id,
                   _MSG.created_at >= row.first_at))).scalar_one()
        return None if unread else "read"

    async def _notify(self, db: AsyncSession, user: User) -> str:
        from rtc_server.portal.account.service import notifications_of

        settings = self._settings
        prefs = notifications_of(user).get("new_messages", {})
        page = "/app/messages.html" if user.role == Role.patient else "/console/messages.html"
        link = settings.base_url.rstrip("/") + page
        sent = []
        if prefs.get("email") and user.email:
            first = user.display_name.split(" ")[0] if user.display_name else None
            queue_mail(db, compose(
                KIND_MESSAGE, user.email, f"{settings.clinic_name}: you have a new message",
                settings.clinic_name, first, [LINE, "Sign in to the patient portal to read it."],
                action=("Open the patient portal", link)))
            sent.append("email")
        phone = user.phone
        if phone is None and user.patient_id is not None:
            patient = await db.get(Patient, user.patient_id)
            phone = patient.phone if patient else None
        if prefs.get("sms") and phone:
            self._text_after_commit(db, phone, f"{settings.clinic_name}: {LINE} {link}")
            sent.append("sms")
        return "+".join(sent) or "no_channel"

    def _text_after_commit(self, db: AsyncSession, phone: str, text: str) -> None:
        from rtc_server.portal.appointments.sms import OutboxSmsSender

        sender = self._sms or OutboxSmsSender(self._settings.outbox_dir)

        async def send() -> None:
            try:
                await sender.send(phone, text, kind=KIND_MESSAGE)  # type: ignore[attr-defined]
            except Exception as exc:  # the portal still shows the message
                log.warning("could not send a new-message text: %s", type(exc).__name__)

        after_commit(db, send)
