"""``rtc-server demo``: a fresh demo clinic a newcomer can click through.

The demo always uses its own SQLite file under ``<data dir>/demo`` (never the
configured database, which it would otherwise wipe) and mail goes to the
outbox folder unless ``RTC_SMTP_URL`` is set.
"""

from __future__ import annotations

import shutil
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
from rtc_server.fhir.importer import import_bundle
from rtc_server.migrate import upgrade

PATIENT_PASSWORD = "Riverside-Demo-2026"  # noqa: S105 (published demo login)
DEMO_QUESTION = "What was the name of your first pet?"
DEMO_ANSWER = "Biscuit"
STAFF_PASSWORD = "Clinic-Staff-Demo-26"  # noqa: S105 (published demo login)


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
    }


def _fresh(data_dir: Path) -> None:
    for name in ("demo.db", "demo.db-wal", "demo.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "outbox", ignore_errors=True)


async def prepare_demo(settings: Settings, today: date | None = None) -> list[DemoLogin]:
    """Create the demo database, load the clinic, create accounts, print the logins."""
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

            from rtc_server.records.models import Patient

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
            for username, role, who in (
                ("dr.rivera", Role.provider, "provider (family medicine)"),
                ("frontdesk", Role.staff, "front-desk staff (verification queue)"),
                ("clinicadmin", Role.admin, "administrator (audit log)"),
            ):
                user = await create_account(session, username=username, password=STAFF_PASSWORD,
                                            role=role, display_name=who)
                await audit.record(session, action="account.create", resource=f"user:{user.id}")
                logins.append(DemoLogin(username, STAFF_PASSWORD, role, who))
            await session.commit()
    finally:
        await engine.dispose()
    _print_banner(settings, logins, summary.lines())
    return logins


def _print_banner(settings: Settings, logins: list[DemoLogin], loaded: list[str]) -> None:
    free = [p for p in DEMO_PATIENTS if p.email][-1:] + [p for p in DEMO_PATIENTS if not p.email]
    out = [
        "",
        f"  {settings.clinic_name} demo is ready: {settings.base_url}/",
        "",
        "  Demo logins (username / password):",
        *[f"    {x.username:<22} {x.password:<22} {x.who}" for x in logins],
        "",
        f"  Demo patients' security question: {DEMO_QUESTION} Answer: {DEMO_ANSWER}",
        "  Providers, staff and admins set up two-factor sign-in at first log-in: the page",
        "  shows a secret for any authenticator app (or: python -c \"import pyotp;",
        "  print(pyotp.TOTP('SECRET').now())\").",
        "",
        "  Records on file without an account, to try Register:",
        *[
            f"    {p.given} {p.family}, born {p.birth_date}, "
            f"zip {p.zip or '(none on file: enter any; staff verify)'}, "
            f"email {p.email or '(none on file: enter yours; staff verify as frontdesk)'}"
            for p in free
        ],
        f"  Mail is written to {settings.outbox_dir}/ (set RTC_SMTP_URL to send it).",
        "",
        "  Loaded: " + "; ".join(loaded),
        "",
    ]
    print("\n".join(out), flush=True)
