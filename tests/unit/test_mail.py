"""Outgoing mail goes to exactly one address: a list or a line break in the
address is refused as a MailError (on every supported Python), and a batch
carries on past a bad mail. Without an SMTP server, mail lands in the outbox
folder with a plain-text copy whose links work."""

from __future__ import annotations

import email
import email.policy
import stat
from pathlib import Path

import pytest

from rtc_server.config import Settings
from rtc_server.notify.email import Mailer, MailError, build_message
from rtc_server.notify.mail import Mail, compose, deliver, link
from tests.harness import make_settings

SENDER = "no-reply@clinic.example.org"


@pytest.mark.parametrize("to", [
    "a@x.org\r\nBcc: e@y.org",
    "a@x.org, b@y.org",
    "Maria <a@x.org>",
    "a@x.org\n",
    # The standard library fails differently on these from one Python to the next
    # (IndexError, HeaderParseError, a defect): each must still be a MailError.
    "",
    "@",
    "a@",
    "@x.org",
    "a@@x.org",
    "<a@x.org>",
    ";",
    "(note)a@x.org",
    "a@x.org\x00",
    " a@x.org",
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


async def test_an_smtp_url_with_an_impossible_port_fails_as_a_mail_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, smtp_url="smtp://127.0.0.1:99999", secret_key="k" * 40)
    with pytest.raises(MailError):
        await Mailer(settings).send("maria.lopez@example.org", "Clinic: a notice", "Hello")


async def test_the_demo_outbox_keeps_a_plain_text_copy_whose_link_works(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", smtp_url=None, secret_key="k" * 40)
    # A token with characters quoted-printable escapes, long enough to be wrapped.
    token = "Zx9=" + "a" * 70 + "/+=="
    url = link("http://127.0.0.1:8000", "activate.html", token)
    mail = compose("activation", "maria.lopez@example.org", "Clinic: activate your account",
                   "Riverside Clinic", "Maria", ["Your account is ready."],
                   action=("Choose your password", url))

    await Mailer(settings).send(mail.to, mail.subject, mail.text, mail.html)

    [eml] = sorted(settings.outbox_dir.glob("*.eml"))
    copy = eml.with_suffix(".txt")
    assert sorted(p.name for p in settings.outbox_dir.iterdir()) == sorted([eml.name, copy.name])
    raw = eml.read_text()
    assert url not in raw  # the .eml body is quoted-printable: the link is broken up in it
    text = copy.read_text()
    assert url in text.splitlines()
    assert "To: maria.lopez@example.org" in text
    assert "Subject: Clinic: activate your account" in text
    # The copy says what the mail says: the decoded plain-text part, word for word.
    sent = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert text.endswith(sent.get_body(preferencelist=("plain",)).get_content())  # type: ignore[union-attr]
    # Both carry a live link: readable by the owner only, in a folder only the owner can open.
    for path in (eml, copy):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.outbox_dir.stat().st_mode) == 0o700
