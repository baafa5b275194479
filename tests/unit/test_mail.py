"""Outgoing mail goes to exactly one address: a list or a line break in the
address is refused as a MailError, and a batch carries on past a bad mail."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtc_server.notify.email import Mailer, MailError, build_message
from rtc_server.notify.mail import Mail, compose, deliver
from tests.harness import make_settings

SENDER = "no-reply@clinic.example.org"


@pytest.mark.parametrize("to", [
    "a@x.org\r\nBcc: e@y.org",
    "a@x.org, b@y.org",
    "Maria <a@x.org>",
    "a@x.org\n",
    "",
])
def test_a_recipient_that_is_not_one_bare_address_is_refused(to: str) -> None:
    with pytest.raises(MailError) as caught:
        build_message(SENDER, to, "Your appointment", "Hello", None)
    assert "x.org" not in str(caught.value)


def test_a_subject_with_a_line_break_is_refused() -> None:
    with pytest.raises(MailError):
        build_message(SENDER, "a@x.org", "Hi\r\nBcc: e@y.org", "Hello", None)


def test_one_address_makes_a_message_to_it() -> None:
    msg = build_message(SENDER, "Maria.Lopez@example.org", "Your appointment", "Hello", "<p>Hello</p>")
    assert msg["To"] == "Maria.Lopez@example.org"
    assert msg.get_all("Bcc") is None


async def test_deliver_sends_the_rest_of_the_batch_after_a_bad_mail(
    tmp_path: Path, smtp, log_lines: list[str]
) -> None:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", smtp)
    mailer = Mailer(settings)

    def mail(kind: str, to: str, subject: str = "Clinic: a notice") -> Mail:
        return compose(kind, to, subject, "Clinic", None, ["Something happened."])

    await deliver(mailer, [
        mail("injected", "a@x.org\r\nBcc: hidden@y.org"),
        mail("listed", "a@x.org, other@y.org"),
        mail("bad_subject", "a@x.org", "Clinic\r\nBcc: hidden@y.org"),
        mail("fine", "maria.lopez@example.org"),
    ])

    [received] = await smtp.wait_for(1)
    assert received["To"] == "maria.lopez@example.org"
    assert not [line for line in log_lines if "hidden@y.org" in line or "other@y.org" in line]
    failed = [line for line in log_lines if "could not send" in line]
    assert [k for k in ("injected", "listed", "bad_subject") if any(k in line for line in failed)] == [
        "injected", "listed", "bad_subject"]
    await mailer.aclose()
