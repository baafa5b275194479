"""``rtc-server demo``: a fresh demo clinic a newcomer can click through.

The demo always uses its own SQLite file under ``<data dir>/demo`` (never the
configured database, which it would otherwise wipe) and mail goes to the
outbox folder unless ``RTC_SMTP_URL`` is set. The banner with the logins is
printed once the server is listening, after the start-up lines, and the access
log is off, so the banner stays on screen.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rtc_server import audit
from rtc_server.auth.accounts import create_account
from rtc_server.auth.models import Role
from rtc_server.auth.passwords import hash_secret, normalize_answer
from rtc_server.config import Settings
from rtc_server.db import create_engine, make_session_factory
from rtc_server.demo.clinic import DEMO_PATIENTS, build_demo_bundle
from rtc_server.demo.people import CLINIC_HOURS, CLINIC_NAME, CLINIC_PHONE, DEMO_STAFF, PRACTITIONERS
from rtc_server.fhir.importer import import_bundle
from rtc_server.migrate import upgrade
from rtc_server.portal.appointments.demo import publish_demo_hours
from rtc_server.portal.helpdesk.demo import seed_demo_tickets
from rtc_server.portal.labs.demo import prepare_demo_labs
from rtc_server.portal.refills.demo import seed_demo_refills

PATIENT_PASSWORD = "Riverside-Demo-2026"  # noqa: S105 (published demo login)
DEMO_QUESTION = "What was the name of your first pet?"
DEMO_ANSWER = "Biscuit"
STAFF_PASSWORD = "Clinic-Staff-Demo-26"  # noqa: S105 (published demo login)
#: Written into the demo's data directory; ``rtc-server totp`` refuses a directory without it.
DEMO_MARKER = "DEMO-DATA-NOT-FOR-PATIENTS"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: Role
    who: str


def demo_overrides(host: str, port: int) -> dict[str, object]:
    import os

    data = Path(os.environ.get("RTC_DATA_DIR", "data")) / "demo"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    return {
        "data_dir": data,
        "database_url": f"sqlite+aiosqlite:///{(data / 'demo.db').resolve()}",
        "base_url": os.environ.get("RTC_BASE_URL", f"http://{shown}:{port}"),
        # The demo clinic's own details (unknown settings are ignored, so these
        # are harmless where the server does not have them).
        "clinic_name": os.environ.get("RTC_CLINIC_NAME", CLINIC_NAME),
        "clinic_phone": os.environ.get("RTC_CLINIC_PHONE", CLINIC_PHONE),
        "clinic_hours": os.environ.get("RTC_CLINIC_HOURS", CLINIC_HOURS),
    }


def _fresh(data_dir: Path) -> None:
    # The audit head belongs to the old database: over a fresh one it would read as tampering.
    for name in ("demo.db", "demo.db-wal", "demo.db-shm", "audit-head"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "outbox", ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEMO_MARKER).write_text(
        "This directory holds the rtc-server demo clinic: invented people, published passwords.\n")


def is_demo_data(data_dir: Path) -> bool:
    """True for a directory ``rtc-server demo`` made (the only place ``totp`` works)."""
    return (data_dir / DEMO_MARKER).is_file()


async def prepare_demo(
    settings: Settings, today: date | None = None, *, show: Callable[[str], None] | None = None,
) -> list[DemoLogin]:
    """Create the demo database, load the clinic, create accounts, and hand the banner
    with the logins to ``show`` (printed at once by default; the CLI prints it when
    the server is listening, see ``print_when_serving``)."""
    import anyio.to_thread

    await anyio.to_thread.run_sync(_fresh, settings.data_dir)
    engine = create_engine(settings)
    logins: list[DemoLogin] = []
    try:
        await upgrade(engine)
        factory = make_session_factory(engine)
        async with factory() as session:
            summary = await import_bundle(session, build_demo_bundle(today or date.today()),
                                          source="demo clinic")
            await session.commit()
        async with factory() as session:
            from sqlmodel import select

            from rtc_server.records.models import Patient, Practitioner

            with_email = [p for p in DEMO_PATIENTS if p.email]
            # Leave one emailed record and every email-less one free, to try registration.
            for demo in with_email[:-1]:
                patient = (
                    await session.exec(select(Patient).where(Patient.fhir_id == demo.fhir_id))
                ).one()
                username = demo.username
                user = await create_account(
                    session, username=username, password=PATIENT_PASSWORD, role=Role.patient,
                    display_name=f"{demo.given} {demo.family}", email=demo.email,
                    patient_id=patient.id,
                )
                user.phone, user.address_line = patient.phone, patient.address_line
                user.city, user.state, user.zip = patient.city, patient.state, patient.zip
                user.security_question = DEMO_QUESTION
                user.security_answer_hash = await hash_secret(normalize_answer(DEMO_ANSWER))
                await audit.record(session, action="account.create", resource=f"user:{user.id}",
                                   patient_id=patient.id)
                logins.append(DemoLogin(username, PATIENT_PASSWORD, Role.patient,
                                        f"patient {demo.given} {demo.family}"))
            for member in DEMO_STAFF:
                user = await create_account(session, username=member.username, password=STAFF_PASSWORD,
                                            role=Role(member.role), display_name=member.name)
                if member.practitioner is not None:
                    # The provider's account is the Practitioner on file (schedule, care team).
                    doc = next(d for d in PRACTITIONERS if d.key == member.practitioner)
                    user.practitioner_id = (await session.exec(
                        select(Practitioner.id).where(Practitioner.fhir_id == doc.fhir_id))).one()
                await audit.record(session, action="account.create", resource=f"user:{user.id}")
                logins.append(DemoLogin(member.username, STAFF_PASSWORD, Role(member.role),
                                        f"{member.role} {member.name} ({member.does})"))
            await session.commit()
        async with factory() as session:
            # Weekly hours for every demo provider, so bookable times run past the imported slots.
            await publish_demo_hours(session, settings)
            # A pharmacy directory, María's pending refill, and help-desk tickets.
            await seed_demo_refills(session)
            await seed_demo_tickets(session)
            # Release the imported lab history; hold an A1c for Dr. Marsh to review.
            await prepare_demo_labs(session)
            await session.commit()
    finally:
        await engine.dispose()
    (show or _print_now)(banner(settings, logins, summary.lines()))
    return logins


def _print_now(text: str) -> None:
    print(text, flush=True)


def banner(settings: Settings, logins: list[DemoLogin], loaded: list[str]) -> str:
    """What the demo prints: where to go, who can log in, and where the mail is."""
    free = [p for p in DEMO_PATIENTS if p.email][-1:] + [p for p in DEMO_PATIENTS if not p.email]
    clinician = next((x.username for x in logins if x.role is not Role.patient), "USERNAME")
    out = [
        "",
        f"  {settings.clinic_name} demo is ready: {settings.base_url}/",
        "",
        "  Demo logins (username / password):",
        *[f"    {x.username:<22} {x.password:<22} {x.who}" for x in logins],
        "",
        f"  Demo patients' security question: {DEMO_QUESTION} Answer: {DEMO_ANSWER}",
        "  Providers, staff and admins set up two-factor sign-in at first log-in: the page",
        "  shows a key for any authenticator app. No app at hand? In another terminal, in",
        "  this directory, this prints the current 6-digit code (demo data only):",
        f"    {cli_command('totp', '--username', clinician)}",
        "",
        "  Records on file without an account, to try Register:",
        *[
            f"    {p.given} {p.family}, born {p.birth_date}, "
            f"zip {p.zip or '(none on file: enter any; staff verify)'}, "
            f"email {p.email or '(none on file: enter yours; staff verify as frontdesk)'}"
            for p in free
        ],
        f"  Mail is written to {settings.outbox_dir}/ : open the .txt copy of each",
        "  message to read it and follow its links (set RTC_SMTP_URL to send mail instead).",
        "",
        "  Loaded: " + "; ".join(loaded),
        "",
    ]
    return "\n".join(out)


def cli_command(*args: str) -> str:
    """``rtc-server <args>`` as this very interpreter runs it (".venv/bin/python -m
    rtc_server ..."), so the line works when pasted, with or without an activated venv."""
    exe = Path(sys.executable)
    try:
        exe = exe.relative_to(Path.cwd())
    except ValueError:
        pass
    return " ".join(shlex.quote(part) for part in (str(exe), "-m", "rtc_server", *args))


class _OnlyProblems(logging.Filter):
    """Lets warnings and errors through. A filter, not a level: uvicorn sets the
    access logger's level when it starts."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_demo_logs() -> None:
    """No line per request and no migration chatter: the banner stays readable."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").addFilter(_OnlyProblems())


class _ShowWhenServing(logging.Handler):
    """Prints ``text`` once, right after uvicorn logs that it is listening."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.INFO)
        self.text = text

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "uvicorn.error" and str(record.msg).startswith("Uvicorn running on"):
            logging.getLogger().removeHandler(self)
            _print_now(self.text)


def print_when_serving(text: str) -> None:
    """Print ``text`` after the server's start-up lines (a handler on the root logger,
    added after the console handler, so it runs after the line is written)."""
    logging.getLogger().addHandler(_ShowWhenServing(text))
