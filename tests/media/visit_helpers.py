"""What the visits tests share: an app with the visit routes and runtime, a small
clinic (a provider linked to a practitioner, patients with portal accounts,
video appointments), signed-in API clients and signaling sockets.

Until ``app.py`` lists the visit routes and builds ``app.state.visits`` in its
lifespan, ``visit_app`` does both the way those lines will.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from rtc_server.app import create_app
from rtc_server.audit import AuditEvent
from rtc_server.auth.actor import NO_REQUEST
from rtc_server.auth.models import Role, SessionStage, User
from rtc_server.auth.sessions import create_session
from rtc_server.config import Settings
from rtc_server.records.models import Appointment, Practitioner, VisitKind
from rtc_server.rooms.runtime import start_visits
from rtc_server.rooms.service import CONSENT_VERSION
from rtc_server.rooms.turn import IceConfig
from tests.harness import add_user, csrf_client, patient_row

VISIT_WS = "/ws/v1/visit"
ORIGIN = "http://testserver"




def use_ice(monkeypatch: pytest.MonkeyPatch, config: IceConfig, app: Any = None) -> None:
    """``app`` (and any app whose visit runtime starts from now on) hands out ``config``
    (STUN/TURN, relay-only), until ``Settings`` has the TURN fields tests could set instead.
    The runtime is built in the lifespan once ``app.py`` does so, before the test runs."""
    monkeypatch.setattr(IceConfig, "from_settings", classmethod(lambda cls, settings: config))
    runtime = getattr(app.state, "visits", None) if app is not None else None
    if runtime is not None:
        runtime.ice = config


def visit_app(settings: Settings) -> Starlette:
    """``create_app`` whose lifespan also starts and closes ``app.state.visits``."""
    app = create_app(settings)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Starlette) -> AsyncIterator[None]:
        async with inner(a):
            if not hasattr(a.state, "visits"):
                a.state.visits = await start_visits(a.state.deps)
                try:
                    yield
                finally:
                    await a.state.visits.close()
            else:
                yield

    app.router.lifespan_context = lifespan
    return app


# --- a small clinic ---------------------------------------------------------------------

@dataclass
class Person:
    user_id: int
    token: str
    username: str
    patient_id: int | None = None
    practitioner_id: int | None = None

    @property
    def cookie(self) -> dict[str, str]:
        return {"Cookie": f"rtc_session={self.token}"}


async def add_practitioner(session_factory: Any, given: str = "Ana", family: str = "Reyes") -> int:
    async with session_factory() as db:
        p = Practitioner(prefix="Dr.", given_name=given, family_name=family, suffix="MD",
                         specialty="Family Medicine")
        db.add(p)
        await db.commit()
        assert p.id is not None
        return p.id


async def person(session_factory: Any, settings: Settings, username: str, *, role: Role = Role.patient,
                 practitioner_id: int | None = None, given: str = "Maria", family: str = "Lopez",
                 primary_practitioner_id: int | None = None, secrets_seen: set[str] | None = None,
                 ) -> Person:
    """An account with a full session (a patient gets a record on file; a provider
    is linked to ``practitioner_id``)."""
    async with session_factory() as db:
        patient_id = None
        if role == Role.patient:
            record = patient_row(given=given, family=family)
            record.primary_practitioner_id = primary_practitioner_id
            db.add(record)
            await db.flush()
            patient_id = record.id
        user = await add_user(db, username, role=role, patient_id=patient_id,
                              display_name=f"{given} {family}")
        if practitioner_id is not None:
            user.practitioner_id = practitioner_id
        token = await create_session(db, user, SessionStage.full, NO_REQUEST, settings)
        await db.commit()
    if secrets_seen is not None:
        secrets_seen.add(token)
    assert user.id is not None
    return Person(user.id, token, username, patient_id, practitioner_id)


async def video_appointment(session_factory: Any, patient: Person, practitioner_id: int, *,
                            start: datetime, minutes: int = 30, reason: str = "Follow-up on cough",
                            kind: VisitKind = VisitKind.video) -> int:
    async with session_factory() as db:
        appt = Appointment(patient_id=patient.patient_id or 0, practitioner_id=practitioner_id,
                           start=start, end=start + timedelta(minutes=minutes), status="booked",
                           reason=reason, kind=kind.value, created_at=datetime.now(UTC))
        db.add(appt)
        await db.commit()
        assert appt.id is not None
        return appt.id


@dataclass
class Clinic:
    practitioner_id: int
    provider: Person
    patient: Person
    appointment_id: int


async def make_clinic(session_factory: Any, settings: Settings, *,
                      starts_in: timedelta = timedelta(minutes=5),
                      secrets_seen: set[str] | None = None, suffix: str = "") -> Clinic:
    """A provider with a video appointment for one patient, ``starts_in`` from now."""
    practitioner_id = await add_practitioner(session_factory)
    provider = await person(session_factory, settings, f"dr.reyes{suffix}", role=Role.provider,
                            practitioner_id=practitioner_id, given="Ana", family="Reyes",
                            secrets_seen=secrets_seen)
    patient = await person(session_factory, settings, f"maria.lopez{suffix}",
                           primary_practitioner_id=practitioner_id, secrets_seen=secrets_seen)
    appt = await video_appointment(session_factory, patient, practitioner_id,
                                   start=datetime.now(UTC) + starts_in)
    return Clinic(practitioner_id, provider, patient, appt)


@asynccontextmanager
async def api_client(app: Any, who: Person, base_url: str = "http://testserver"
                     ) -> AsyncIterator[httpx.AsyncClient]:
    """An API client signed in as ``who`` (CSRF header set, as the pages send it)."""
    client = await csrf_client(app, base_url)
    client.cookies.set("rtc_session", who.token)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def http_client(base_url: str, who: Person) -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client to a live server, signed in as ``who`` (CSRF header set)."""
    async with httpx.AsyncClient(base_url=base_url, headers={"Origin": base_url}) as client:
        r = await client.get("/api/v1/auth/csrf")
        client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        client.cookies.set("rtc_session", who.token)
        yield client


async def admit_over_http(base_url: str, clinic: Clinic) -> tuple[int, int]:
    """``checked_in_and_admitted`` against a live server: (visit id, participant id)."""
    async with http_client(base_url, clinic.patient) as patient, \
            http_client(base_url, clinic.provider) as provider:
        r = await patient.post("/api/v1/visits/check-in", json=check_in_body(clinic.appointment_id))
        assert r.status_code == 200, r.text
        visit_id = r.json()["visit_id"]
        [waiting] = (await provider.get("/api/v1/visits/waiting-room")).json()["waiting"]
        r = await provider.post(f"/api/v1/visits/{visit_id}/admit",
                                json={"participant_id": waiting["participant_id"]})
        assert r.status_code == 200, r.text
        return visit_id, waiting["participant_id"]


def check_in_body(appointment_id: int | None = None, visit_id: int | None = None,
                  **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": "Follow-up on cough", "consent_version": CONSENT_VERSION}
    if appointment_id is not None:
        body["appointment_id"] = appointment_id
    if visit_id is not None:
        body["visit_id"] = visit_id
    body.update(extra)
    return body


async def checked_in_and_admitted(app: Any, clinic: Clinic) -> tuple[int, int]:
    """Check the clinic's patient in and have the provider admit them: (visit id, participant id)."""
    async with api_client(app, clinic.patient) as patient, \
            api_client(app, clinic.provider) as provider:
        r = await patient.post("/api/v1/visits/check-in", json=check_in_body(clinic.appointment_id))
        assert r.status_code == 200, r.text
        visit_id = r.json()["visit_id"]
        room = (await provider.get("/api/v1/visits/waiting-room")).json()
        [waiting] = [w for w in room["waiting"] if w["visit_id"] == visit_id]
        r = await provider.post(f"/api/v1/visits/{visit_id}/admit",
                                json={"participant_id": waiting["participant_id"]})
        assert r.status_code == 200, r.text
        return visit_id, waiting["participant_id"]


async def audit_rows(session_factory: Any, action: str) -> list[AuditEvent]:
    async with session_factory() as db:
        return list((await db.exec(select(AuditEvent).where(AuditEvent.action == action))).all())


async def user_row(session_factory: Any, user_id: int) -> User:
    async with session_factory() as db:
        user = await db.get(User, user_id)
        assert user is not None
        return user


# --- signaling sockets --------------------------------------------------------------------

@asynccontextmanager
async def visit_socket(port: int, who: Person | None, *, origin: str = ORIGIN,
                       **options: Any) -> AsyncIterator[ClientConnection]:
    """A ``/ws/v1/visit`` socket that has seen ``ready``."""
    options.setdefault("compression", None)
    options.setdefault("max_size", 2**20)
    headers = who.cookie if who is not None else {}
    async with connect(f"ws://127.0.0.1:{port}{VISIT_WS}", origin=origin,  # type: ignore[arg-type]
                       additional_headers=headers, **options) as ws:
        assert await recv(ws) == {"type": "ready"}
        yield ws


async def recv(ws: ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def recv_until(ws: ClientConnection, type_: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame of ``type_``, skipping others (room events, pongs)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await recv(ws, timeout)
            if frame.get("type") == type_:
                return frame  # type: ignore[no-any-return]


async def join(ws: ClientConnection, visit_id: int, ref: str = "j") -> dict[str, Any]:
    await send(ws, {"type": "join", "visit": visit_id, "ref": ref})
    return await recv_until(ws, "joined")


#: The smallest SDP the relay accepts (shape only; the server never reads it further).
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
