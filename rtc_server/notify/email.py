"""Outgoing email through a real SMTP client (aiosmtplib).

With ``RTC_SMTP_URL`` unset, mail is written to ``<data dir>/outbox/`` instead
(a laptop demo has no mail server): the message as an ``.eml`` file and, beside
it, a ``.txt`` copy with the headers a reader needs and the decoded plain-text
part, so a link copied from it works (the .eml's quoted-printable body breaks
long links with ``=`` soft line breaks and ``=3D``). Both files are readable by
the owner only, and the log names the file, not its contents, since emailed
links carry tokens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Coroutine
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
import anyio.to_thread

from rtc_server.config import Settings
from rtc_server.datadir import PRIVATE_FILE_MODE, ensure_private_dir

log = logging.getLogger("rtc_server.mail")


#: How long shutdown waits for mail still being sent.
SHUTDOWN_GRACE_SECONDS = 10.0


class MailError(Exception):
    """The mail could not be handed to the SMTP server."""


#: What the standard library's header parser raises for text it cannot use. It
#: differs between Python versions for the same input (3.13 raises
#: HeaderParseError, a MessageError, for an empty address where 3.11 raised
#: IndexError), so all of them mean "refuse"; header defects are ValueErrors.
_HEADER_ERRORS = (ValueError, IndexError, MessageError)


def _one_bare_address(to: str) -> Address:
    """``to`` as an Address if it is exactly one bare address (``local@domain``
    and nothing else), else MailError. Checked here first, so the outcome does not
    depend on how a given Python's parser fails; the parser then has the last word,
    and must read back exactly what it was given (no comments, quotes or lists)."""
    if not to or to.count("@") != 1 or any(ch.isspace() or not ch.isprintable() for ch in to):
        raise MailError("invalid recipient address")
    try:
        recipient = Address(addr_spec=to)
    except _HEADER_ERRORS:
        raise MailError("invalid recipient address") from None
    if recipient.addr_spec != to:
        raise MailError("invalid recipient address")
    return recipient


def build_message(sender: str, to: str, subject: str, text: str, html: str | None) -> EmailMessage:
    """The message for one recipient. Raises MailError (naming neither the
    address nor the subject) unless ``to`` is exactly one bare address: an
    address list or a line break must not turn one mail into several, or add
    headers such as Bcc."""
    recipient = _one_bare_address(to)
    msg = EmailMessage()
    try:
        msg["From"] = sender
        msg["To"] = recipient
        msg["Subject"] = subject
    except _HEADER_ERRORS:
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
            port = parts.port  # a ValueError for a port that is not one
        except ValueError:
            raise MailError("RTC_SMTP_URL has an invalid port") from None
        try:
            await aiosmtplib.send(
                msg,
                hostname=parts.hostname or "127.0.0.1",
                port=port or (465 if parts.scheme == "smtps" else 25),
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
        """Write ``<stamp>.eml`` and its plain-text copy ``<stamp>.txt``; returns the .eml."""
        box = ensure_private_dir(self._settings.outbox_dir)
        path = box / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        # The copy first: whoever watches the folder for .eml files finds both.
        _write_private(path.with_suffix(".txt"), plain_text_copy(msg).encode())
        _write_private(path, bytes(msg))
        return path


def plain_text_copy(msg: EmailMessage) -> str:
    """The message as a person reads it: From, To, Subject and Date, a blank
    line, then the decoded plain-text part (links whole, as sent)."""
    body = msg.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    head = "".join(f"{name}: {msg[name]}\n" for name in ("From", "To", "Subject", "Date") if msg[name])
    return f"{head}\n{text}"


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable and writable by the owner only (the mail carries live links)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
