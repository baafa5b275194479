"""The registration emails: activation and "someone tried to register".

Composed by ``notify.mail.compose`` (plain text and HTML, anything from a
person or a record escaped in the HTML, no health data); the services return
them and the routes send them after the response with ``notify.mail.with_mail``.
"""

from __future__ import annotations

from rtc_server.notify.mail import Mail, compose


def activation(*, to: str, name: str | None, url: str, clinic: str) -> Mail:
    return compose(
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
    return compose(
        "registration_attempt", to, f"Someone tried to register at {clinic}", clinic, name,
        [
            "Someone tried to create a patient portal account using your details. "
            "No account was created and nothing was changed.",
            "If this was you and you already have an account, use \"Forgot username\" or "
            "\"Forgot password\" on the log-in page. If it was not you, please call the clinic.",
        ],
    )
