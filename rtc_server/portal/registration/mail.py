"""The account emails: activation, "someone tried to register", password reset,
password changed, forgotten username.

Every message has a plain-text and an HTML part; anything that came from a
person or a record (a name, a username) is escaped in the HTML. Messages name
no health data: a first-name greeting and the clinic's name at most.

Services build ``Mail`` values; routes hand them to ``deliver`` in a background
task after the response, so a request that sends mail takes as long as one that
does not (the reply must not tell whether a record or an account exists).
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
        except (MailError, OSError) as exc:
            log.warning("could not send %s mail: %s", mail.kind, type(exc).__name__)


def with_mail(response: Response, request: Request, mails: Sequence[Mail]) -> Response:
    """Send ``mails`` after ``response`` has gone out (see the module docstring)."""
    if mails:
        response.background = BackgroundTask(deliver, mailer(request), list(mails))
    return response


def link(base_url: str, page: str, token: str) -> str:
    return f"{base_url}/{page}?token={quote(token, safe='')}"


def _greeting(name: str | None) -> tuple[str, str]:
    if name:
        return f"Hello {name},", f"<p>Hello {html.escape(name)},</p>"
    return "Hello,", "<p>Hello,</p>"


def _compose(
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


def activation(*, to: str, name: str | None, url: str, clinic: str) -> Mail:
    return _compose(
        "activation", to, f"Activate your {clinic} patient portal account", clinic, name,
        [
            "Someone, hopefully you, asked to create a patient portal account with this "
            "email address. To finish, open the link below.",
            "The link works once and expires in 48 hours. If you did not ask for an account, "
            "ignore this message and nothing will happen.",
        ],
        ("Activate your account", url),
    )


def registration_attempt(*, to: str, name: str | None, clinic: str) -> Mail:
    """Sent to the address on file when someone tries to register for a record
    that already has an account, or gives another email: no link, no details."""
    return _compose(
        "registration_attempt", to, f"Someone tried to register at {clinic}", clinic, name,
        [
            "Someone tried to create a patient portal account using your details. "
            "No account was created and nothing was changed.",
            "If this was you and you already have an account, use \"Forgot username\" or "
            "\"Forgot password\" on the log-in page. If it was not you, please call the clinic.",
        ],
    )


def password_reset(*, to: str, name: str | None, username: str, url: str, clinic: str) -> Mail:
    return _compose(
        "password_reset", to, f"Reset your {clinic} portal password", clinic, name,
        [
            f"We received a request to reset the password of the account \"{username}\". "
            "Open the link below, answer your security question and choose a new password.",
            "The link works once and expires in 1 hour. If you did not ask for this, ignore "
            "this message: your password stays the same.",
        ],
        ("Choose a new password", url),
    )


def password_reset_unavailable(*, to: str, name: str | None, username: str, clinic: str) -> Mail:
    """For an account with no security question: it cannot reset itself."""
    return _compose(
        "password_reset_unavailable", to, f"Password reset at {clinic}", clinic, name,
        [
            f"We received a request to reset the password of the account \"{username}\". "
            "This account has no security question, so its password cannot be reset online. "
            "Please contact the clinic or your administrator.",
        ],
    )


def password_changed(*, to: str, name: str | None, username: str, clinic: str) -> Mail:
    return _compose(
        "password_changed", to, f"Your {clinic} portal password was changed", clinic, name,
        [
            f"The password of the account \"{username}\" was just changed, and every "
            "signed-in session was ended.",
            "If you did not do this, call the clinic right away.",
        ],
    )


def username_reminder(*, to: str, usernames: Sequence[str], clinic: str) -> Mail:
    names = ", ".join(f"\"{u}\"" for u in usernames)
    label = "username" if len(usernames) == 1 else "usernames"
    return _compose(
        "username_reminder", to, f"Your {clinic} portal {label}", clinic, None,
        [
            f"You asked for the {label} of the portal account(s) that use this email "
            f"address: {names}.",
            "If you did not ask for this, you can ignore this message.",
        ],
    )
