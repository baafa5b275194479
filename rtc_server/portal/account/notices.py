"""The mails Account Settings sends: the link that confirms a new address, and
a notice to the account's address after every change that matters for
security, so a hijacked session cannot quietly take an account over.

They are ``notify.mail.Mail`` values (plain text and HTML, anything a
person typed escaped in the HTML) that the services queue in the outbox in
their transaction (``notify.outbox``), so no request waits for SMTP.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.auth.models import User
from rtc_server.config import Settings
from rtc_server.notify.mail import Mail, compose, link
from rtc_server.notify.outbox import queue_mail


def _name(user: User) -> str:
    return user.display_name or user.username


def confirm_new_email(*, user: User, to: str, token: str, settings: Settings) -> Mail:
    clinic = settings.clinic_name
    return compose(
        "email_change_confirm", to, f"{clinic}: confirm your new email address", clinic, _name(user),
        [
            "Someone, hopefully you, asked to use this address for a patient portal account. "
            "Open the link below to confirm it.",
            "The link works once and expires in 48 hours. If you did not ask for this, ignore "
            "this message and nothing will change.",
        ],
        ("Confirm your new email address", link(settings.base_url, "confirm-email.html", token)),
    )


def security_notice(*, user: User, settings: Settings, kind: str, subject: str, what: str) -> list[Mail]:
    """A notice to the account's current address (none if it has no address)."""
    if not user.email:
        return []
    clinic = settings.clinic_name
    return [compose(
        kind, user.email, f"{clinic}: {subject}", clinic, _name(user),
        [f"{what} If this wasn't you, reset your password now and contact the clinic."],
        ("Reset your password", f"{settings.base_url}/forgot-password.html"),
    )]


def queue_security_notice(
    db: AsyncSession, *, user: User, settings: Settings, kind: str, subject: str, what: str
) -> None:
    """Queue ``security_notice`` in ``db``'s transaction (sent after it commits)."""
    for mail in security_notice(user=user, settings=settings, kind=kind, subject=subject, what=what):
        queue_mail(db, mail)
