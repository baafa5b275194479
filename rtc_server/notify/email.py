"""Outgoing email through a real SMTP client (aiosmtplib).

With ``RTC_SMTP_URL`` unset, mail is written to ``<data dir>/outbox/`` as .eml
files instead (a laptop demo has no mail server); the log names the file, not
its contents, since emailed links carry tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
import anyio.to_thread

from rtc_server.config import Settings

log = logging.getLogger("rtc_server.mail")


#: How long shutdown waits for mail still being sent.
SHUTDOWN_GRACE_SECONDS = 10.0


class MailError(Exception):
    """The mail could not be handed to the SMTP server."""


def build_message(sender: str, to: str, subject: str, text: str, html: str | None) -> EmailMessage:
    """The message for one recipient. Raises MailError (naming neither the
    address nor the subject) unless ``to`` is exactly one bare address: an
    address list or a line break must not turn one mail into several, or add
    headers such as Bcc."""
    try:
        recipient = Address(addr_spec=to)
    except (ValueError, IndexError):  # email.errors defects are ValueErrors too
        raise MailError("invalid recipient address") from None
    msg = EmailMessage()
    try:
        msg["From"] = sender
        msg["To"] = recipient
        msg["Subject"] = subject
    except (ValueError, IndexError):
        raise MailError("invalid header value") from None
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="rtc-server.local")
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


class Mailer:
    """The SMTP (or outbox) transport, built in the app's lifespan.

    It also owns mail sends started outside a request (``spawn``), so they are
    finished, not dropped, when the app shuts down (``aclose``).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = settings.smtp_url
        self._pending: set[asyncio.Task[None]] = set()

    def spawn(self, send: Coroutine[Any, Any, None]) -> None:
        """Run a send in its own task (asyncio keeps only weak references: we hold it)."""
        task = asyncio.get_running_loop().create_task(send)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=SHUTDOWN_GRACE_SECONDS)
        for task in self._pending:
            task.cancel()

    async def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        msg = build_message(self._settings.mail_from, to, subject, text, html)
        if self._url is None:
            path = await anyio.to_thread.run_sync(self._write_outbox, msg)
            log.info("mail written to outbox file %s (no RTC_SMTP_URL set)", path.name)
            return
        parts = urlsplit(self._url)
        try:
            await aiosmtplib.send(
                msg,
                hostname=parts.hostname or "127.0.0.1",
                port=parts.port or (465 if parts.scheme == "smtps" else 25),
                username=unquote(parts.username) if parts.username else None,
                password=unquote(parts.password) if parts.password else None,
                use_tls=parts.scheme == "smtps",
                start_tls=True if parts.scheme == "smtp+starttls" else None,
                timeout=15,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.error("mail delivery failed: %s", type(exc).__name__)
            raise MailError(type(exc).__name__) from exc

    def _write_outbox(self, msg: EmailMessage) -> Path:
        box = self._settings.outbox_dir
        box.mkdir(parents=True, exist_ok=True)
        path = box / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(bytes(msg))
        return path
