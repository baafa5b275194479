"""The registration emails: activation, "request received" and "someone tried
to register".

Composed by ``notify.mail.compose`` (plain text and HTML, anything from a
person or a record escaped in the HTML, no health data). Which address gets
which message, and why that tells a stranger nothing, is decided in
``service`` (see its docstring); this module only words them.

``request_received`` goes to an address somebody typed, which nobody has
confirmed yet: it greets nobody by name and repeats nothing that was typed,
so it cannot carry a stranger's text to someone else's inbox, and it reads
true whatever was found.
"""

from __future__ import annotations

from rtc_server.notify.mail import Mail, compose


def activation(*, to: str, name: str | None, url: str, clinic: str) -> Mail:
    return compose(
        "activation", to, f"Activate your {clinic} patient portal account", clinic, name,
        [
            "Someone, hopefully you, asked to create a patient portal account with this "
            "email address, and we have confirmed the details with your record. To finish, "
            "open the link below and choose your username and password.",
            "The link works once and expires in 48 hours. If you did not ask for an account, "
            "ignore this message and nothing will happen.",
        ],
        ("Choose your username and password", url),
    )


def request_received(*, to: str, clinic: str, review_days: int) -> Mail:
    """Sent to the typed address after every sign-up that does not get a message
    of its own there (see ``service``): true whether or not a record matched."""
    days = _business_days(review_days)
    return compose(
        "registration_received", to, f"We received your request for a {clinic} patient portal account",
        clinic, None,
        [
            "We received a request to create a patient portal account with this email address.",
            "If we can confirm the details with your record at the clinic straight away, you will "
            "get a second email with a link to finish, usually within a few minutes.",
            "Some records need a person at the clinic to check the details first, for example "
            f"when the clinic has no email address on file for you. That takes up to {days}; "
            "once they have confirmed your details you will get an email with the link.",
            f"If you have not heard from us within {days}, the details may not match what the "
            "clinic has on file: check them and try again, or call the clinic.",
            "If you did not ask for an account, ignore this message.",
        ],
    )


def review_started(*, to: str, name: str | None, clinic: str, review_days: int) -> Mail:
    """Sent to the address on file when a sign-up for that record waits for a
    person to check it (the record's owner reads it, never a stranger)."""
    days = _business_days(review_days)
    return compose(
        "registration_review", to, f"Your {clinic} patient portal request is being checked",
        clinic, name,
        [
            "We received your request to create a patient portal account. A person at the "
            "clinic will check your details against your record.",
            f"You will get an email within {days}. Once your details are confirmed, it has "
            "a link to choose your username and password.",
            "If you did not ask for an account, please call the clinic.",
        ],
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


def _business_days(n: int) -> str:
    return "1 business day" if n == 1 else f"{n} business days"
