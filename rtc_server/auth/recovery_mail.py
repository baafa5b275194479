"""The mails of forgotten passwords and usernames: the reset link, "this
account cannot reset online", "your password was changed" and the username
reminder. Composed by ``notify.mail.compose`` (plain text and HTML, names
escaped, no health data); ``auth.recovery`` queues them in the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence

from rtc_server.notify.mail import Mail, compose


def password_reset(*, to: str, name: str | None, username: str, url: str, clinic: str) -> Mail:
    return compose(
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
    return compose(
        "password_reset_unavailable", to, f"Password reset at {clinic}", clinic, name,
        [
            f"We received a request to reset the password of the account \"{username}\". "
            "This account has no security question, so its password cannot be reset online. "
            "Please contact the clinic or your administrator.",
        ],
    )


def password_changed(*, to: str, name: str | None, username: str, clinic: str) -> Mail:
    return compose(
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
    return compose(
        "username_reminder", to, f"Your {clinic} portal {label}", clinic, None,
        [
            f"You asked for the {label} of the portal account(s) that use this email "
            f"address: {names}.",
            "If you did not ask for this, you can ignore this message.",
        ],
    )
