"""Composing account and security mail.

Every message has a plain-text and an HTML part; anything that came from a
person or a record (a name, a username) is escaped in the HTML. Messages name
no health data: a first-name greeting and the clinic's name at most.

Services build ``Mail`` values with ``compose`` and queue them in their own
transaction with ``notify.outbox.queue_mail``; a worker sends them after the
commit, so a request that causes mail takes as long as one that does not (the
reply must not tell whether a record or an account exists). The transport is
``notify.email.Mailer``.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from rtc_server.notify.email import MailError

log = logging.getLogger("rtc_server.account_mail")


@dataclass(frozen=True)
class Mail:
    kind: str  # for the log: which message failed, never to whom
    to: str
    subject: str
    text: str
    html: str


async def deliver(mailer: Any, mails: Sequence[Mail]) -> None:
    """Send each mail; a failure is logged (by kind only) and the rest still go."""
    for mail in mails:
        try:
            await mailer.send(mail.to, mail.subject, mail.text, mail.html)
        except (MailError, OSError, ValueError) as exc:
            log.warning("could not send %s mail: %s", mail.kind, type(exc).__name__)


def link(base_url: str, page: str, token: str) -> str:
    return f"{base_url}/{page}?token={quote(token, safe='')}"


def _greeting(name: str | None) -> tuple[str, str]:
    if name:
        return f"Hello {name},", f"<p>Hello {html.escape(name)},</p>"
    return "Hello,", "<p>Hello,</p>"


def compose(
    kind: str, to: str, subject: str, clinic: str, name: str | None,
    paragraphs: Sequence[str], action: tuple[str, str] | None = None,
) -> Mail:
    """Plain paragraphs (no markup) in both parts; ``action`` is (label, url)."""
    hello_text, hello_html = _greeting(name)
    text_parts = [hello_text, *paragraphs]
    html_parts = [hello_html, *(f"<p>{html.escape(p)}</p>" for p in paragraphs)]
    if action is not None:
        label, url = action
        text_parts.insert(2, f"{label}:\n{url}")
        html_parts.insert(
            2, f'<p><a href="{html.escape(url, quote=True)}">{html.escape(label)}</a></p>'
        )
    text_parts.append(f"{clinic}\nThis message was sent automatically; please do not reply.")
    html_parts.append(
        f"<p>{html.escape(clinic)}<br>This message was sent automatically; please do not reply.</p>"
    )
    body_html = (
        '<!doctype html><html><body style="font-family: sans-serif">'
        + "".join(html_parts) + "</body></html>"
    )
    return Mail(kind, to, subject, "\n\n".join(text_parts) + "\n", body_html)
