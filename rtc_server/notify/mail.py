"""Composing account and security mail, and sending it without making a request wait.

Every message has a plain-text and an HTML part; anything that came from a
person or a record (a name, a username) is escaped in the HTML. Messages name
no health data: a first-name greeting and the clinic's name at most.

Services build ``Mail`` values with ``compose``; routes hand them to
``with_mail``, which sends them in a background task after the response, so a
request that sends mail takes as long as one that does not (the reply must not
tell whether a record or an account exists). Where the mail arises on a path
that ends in an error (a log-in lock), ``send_in_background`` sends it from a
task of its own instead. Either way a failed send is logged by kind, never
raised: the action the mail reports has already happened.

The transport is ``notify.email.Mailer``; this module only decides what is sent
and when.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from rtc_server.context import mailer
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


def with_mail(response: Response, request: Request, mails: Sequence[Mail]) -> Response:
    """Send ``mails`` after ``response`` has gone out (see the module docstring)."""
    if mails:
        response.background = BackgroundTask(deliver, mailer(request), list(mails))
    return response


def send_in_background(mailer: Any, mails: Sequence[Mail]) -> None:
    """Send ``mails`` from a task of their own, for a caller that is about to
    raise (so it has no response to attach them to) and must not wait for SMTP.
    The mailer keeps the task and finishes it at shutdown."""
    if mails:
        mailer.spawn(deliver(mailer, list(mails)))


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
