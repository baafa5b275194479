"""The mail outbox: mail is stored in the caller's transaction and sent by a
worker, never on the request path.

``queue_mail(db, mail)`` adds the message to ``db``'s transaction (it is sent
only if that commits) and wakes this instance's worker after the commit. So a
request that causes mail takes as long as one that does not, and the client's
next request is not slowed by SMTP either: what a reply must not tell
(whether an account or a record exists) does not leak through mail timing.

The worker (one per instance, started in the app's lifespan) claims due mail
in the database, so with several instances each message is sent by one of
them: a conditional UPDATE decides (``FOR UPDATE SKIP LOCKED`` on PostgreSQL
keeps instances from waiting on each other; SQLite has one writer). A claim
whose instance died is taken over after ``mail_claim_seconds``. A failed send
is retried with doubling delays (``mail_retry_seconds``) up to
``mail_max_attempts``, then given up and logged by kind. Once a message is
sent or given up its body is deleted: emailed links are live credentials.
Delivery is therefore at-least-once (an instance dying between sending and
recording it means one duplicate), which is right for notices and links.

Tests wait for mail with ``await app.state.deps.mail_worker.drain()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Column, DateTime, Index, Text, or_, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.db import AppSession, SessionFactory, after_commit, utcnow

if TYPE_CHECKING:
    from rtc_server.config import Settings
    from rtc_server.notify.email import Mailer
    from rtc_server.notify.mail import Mail

log = logging.getLogger("rtc_server.outbox")

#: At shutdown, a send in progress gets this long to finish before it is cancelled
#: (a cancelled mail is claimed again after ``mail_claim_seconds``).
SHUTDOWN_GRACE_SECONDS = 10.0

#: ``make_session_factory(engine, **{WAKE_INFO: worker.wake})``: who to wake after commit.
WAKE_INFO = "rtc.mail_wake"


class MailStatus(enum.StrEnum):
    queued = "queued"
    sent = "sent"
    failed = "failed"  # given up after mail_max_attempts


class OutboxMail(SQLModel, table=True):
    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_status_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)  # for the log: which message, never to whom
    to_addr: str = Field(max_length=320)
    subject: str = Field(max_length=300)
    text_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    html_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default=MailStatus.queued, max_length=16)  # a MailStatus
    attempts: int = 0
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    claimed_by: str | None = Field(default=None, max_length=32)
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    done_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    last_error: str | None = Field(default=None, max_length=64)


def queue_mail(db: AsyncSession, mail: Mail) -> None:
    """Add ``mail`` to ``db``'s transaction; it is sent after the commit (never
    if the transaction rolls back). Not a coroutine: call it without ``await``."""
    now = utcnow()
    db.add(OutboxMail(
        kind=mail.kind[:64], to_addr=mail.to, subject=mail.subject, text_body=mail.text,
        html_body=mail.html, created_at=now, due_at=now,
    ))
    wake = db.info.get(WAKE_INFO)
    if wake is not None and isinstance(db, AppSession):

        async def wake_worker() -> None:
            wake()

        after_commit(db, wake_worker)


class MailWorker:
    """Sends queued mail; one per app instance (see the module docstring)."""

    def __init__(self, mailer: Mailer, settings: Settings) -> None:
        self._mailer = mailer
        self._settings = settings
        self._factory: SessionFactory | None = None
        self._name = uuid.uuid4().hex[:16]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._started = 0
        self._finished = 0
        self._round_done = asyncio.Condition()

    def start(self, session_factory: SessionFactory) -> None:
        self._factory = session_factory
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mail-worker")

    def wake(self) -> None:
        self._wake.set()

    async def drain(self) -> None:
        """Return once every mail due now has been sent (or failed and been put
        back for a later retry): waits for a full round that began after this
        call. (Callers bound the wait themselves, e.g. with ``asyncio.timeout``.)"""
        if self._task is None or self._task.done():
            raise RuntimeError("the mail worker is not running")
        want = self._started + 1
        self.wake()
        async with self._round_done:
            await self._round_done.wait_for(lambda: self._finished >= want)

    async def aclose(self) -> None:
        """Stop after the mail being sent (if any); what is still queued stays
        queued for the next start or another instance."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self.wake()
        await asyncio.wait({task}, timeout=SHUTDOWN_GRACE_SECONDS)
        while not task.done():  # a library may swallow one cancellation: insist
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if not task.cancelled() and task.exception() is not None:
            log.error("the mail worker stopped with %s", type(task.exception()).__name__)

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.mail_poll_seconds)
            self._wake.clear()
            self._started += 1
            number = self._started
            try:
                while not self._closing and (mail := await self._claim()) is not None:
                    await self._send(mail)
            except Exception:  # keep the worker alive; the next round retries
                log.exception("mail worker round failed")
            self._finished = number
            async with self._round_done:
                self._round_done.notify_all()

    async def _claim(self) -> OutboxMail | None:
        """One due mail, claimed for this worker (committed), or None."""
        assert self._factory is not None
        async with self._factory() as db:
            now = utcnow()
            stale = now - timedelta(seconds=self._settings.mail_claim_seconds)
            free = or_(col(OutboxMail.claimed_at).is_(None), col(OutboxMail.claimed_at) < stale)
            candidates = (await db.exec(
                select(OutboxMail.id)
                .where(col(OutboxMail.status) == MailStatus.queued, col(OutboxMail.due_at) <= now, free)
                .order_by(col(OutboxMail.due_at), col(OutboxMail.id))
                .limit(5)
                .with_for_update(skip_locked=True)
            )).all()
            for mail_id in candidates:
                result = await db.exec(  # type: ignore[call-overload]
                    update(OutboxMail)
                    .where(col(OutboxMail.id) == mail_id, col(OutboxMail.status) == MailStatus.queued,
                           free)
                    .values(claimed_by=self._name, claimed_at=now, attempts=OutboxMail.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:
                    mail = await db.get(OutboxMail, mail_id, populate_existing=True)
                    await db.commit()
                    return mail
            await db.commit()
            return None

    async def _send(self, mail: OutboxMail) -> None:
        try:
            await self._mailer.send(mail.to_addr, mail.subject, mail.text_body or "", mail.html_body)
        except Exception as exc:  # SMTP down, bad address...: retry later or give up
            await self._failed(mail, type(exc).__name__)
            return
        await self._finish(mail, MailStatus.sent, None)

    async def _failed(self, mail: OutboxMail, error: str) -> None:
        if mail.attempts >= self._settings.mail_max_attempts:
            log.error("gave up sending %s mail after %d attempts: %s", mail.kind, mail.attempts, error)
            await self._finish(mail, MailStatus.failed, error)
            return
        delay = self._settings.mail_retry_seconds * 2 ** (mail.attempts - 1)
        log.warning("could not send %s mail (attempt %d, retry in %.0f s): %s",
                    mail.kind, mail.attempts, delay, error)
        await self._update(mail, status=MailStatus.queued, claimed_by=None, claimed_at=None,
                           due_at=utcnow() + timedelta(seconds=delay), last_error=error[:64])

    async def _finish(self, mail: OutboxMail, status: MailStatus, error: str | None) -> None:
        # The body goes: emailed links are live credentials.
        await self._update(mail, status=status, done_at=utcnow(), text_body=None, html_body=None,
                           claimed_by=None, last_error=error[:64] if error else None)

    async def _update(self, mail: OutboxMail, **values: object) -> None:
        assert self._factory is not None
        async with self._factory() as db:
            await db.exec(  # type: ignore[call-overload]
                update(OutboxMail)
                .where(col(OutboxMail.id) == mail.id, col(OutboxMail.claimed_by) == self._name)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            await db.commit()
