"""Shared pieces of the messaging tests (no tests here): an app with messaging
wired in, and a small clinic of real accounts with signed-in API clients.

- Dr. Ada Reyes is Maria's and Sam's primary practitioner (provider account
  ``dr.reyes``); Dr. Ben Ortiz has an account and no patients (``dr.ortiz``).
- ``front.desk`` is staff; ``root`` is an admin.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import update
from sqlmodel import select

from rtc_server.app import create_app
from rtc_server.audit import AuditEvent
from rtc_server.auth.models import Role, User
from rtc_server.chat.models import Message
from rtc_server.chat.runtime import ChatLimits
from rtc_server.config import Settings
from rtc_server.records.models import Practitioner
from tests.harness import create_patient, create_signed_in_user, csrf_client

#: Generous limits for tests that are not about the rate.
ROOMY = ChatLimits(messages_per_second=1000, burst=1000, unread_notice_seconds=0)


@pytest_asyncio.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    """The app, with limits roomy enough for tests that are not about the rate."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        application.state.chat.limits = ROOMY
        yield application


@dataclass
class Person:
    user_id: int
    token: str
    client: httpx.AsyncClient
    patient_id: int | None = None
    practitioner_id: int | None = None


@dataclass
class Clinic:
    app: Any
    maria: Person
    sam: Person
    reyes: Person
    ortiz: Person
    desk: Person
    root: Person
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()


async def add_practitioner(session_factory: Any, given: str, family: str) -> int:
    async with session_factory() as db:
        p = Practitioner(prefix="Dr.", given_name=given, family_name=family, suffix="MD",
                         specialty="Family Medicine")
        db.add(p)
        await db.commit()
        assert p.id is not None
        return p.id


async def person(app: Any, username: str, secrets: set[str], *, role: Role = Role.patient,
                 patient_id: int | None = None, practitioner_id: int | None = None,
                 display_name: str = "") -> Person:
    factory = app.state.session_factory
    token = await create_signed_in_user(factory, app.state.settings, username, role=role,
                                        patient_id=patient_id, display_name=display_name)
    secrets.add(token)
    async with factory() as db:
        user_id = (await db.exec(select(User.id).where(User.username == username))).one()
        if practitioner_id is not None:
            await db.exec(update(User).where(User.id == user_id).values(practitioner_id=practitioner_id))
            await db.commit()
    client = await csrf_client(app)
    client.cookies.set("rtc_session", token)
    return Person(user_id, token, client, patient_id, practitioner_id)


async def make_clinic(app: Any, secrets: set[str]) -> Clinic:
    factory = app.state.session_factory
    reyes_p = await add_practitioner(factory, "Ada", "Reyes")
    ortiz_p = await add_practitioner(factory, "Ben", "Ortiz")
    maria_p = await create_patient(factory, given="Maria", family="Lopez")
    sam_p = await create_patient(factory, given="Sam", family="Lee")
    async with factory() as db:
        from rtc_server.records.models import Patient

        await db.exec(update(Patient).values(primary_practitioner_id=reyes_p))
        await db.commit()
    people = {
        "maria": await person(app, "maria.lopez", secrets, patient_id=maria_p, display_name="Maria Lopez"),
        "sam": await person(app, "sam.lee", secrets, patient_id=sam_p, display_name="Sam Lee"),
        "reyes": await person(app, "dr.reyes", secrets, role=Role.provider, practitioner_id=reyes_p,
                              display_name="Dr. Ada Reyes"),
        "ortiz": await person(app, "dr.ortiz", secrets, role=Role.provider, practitioner_id=ortiz_p,
                              display_name="Dr. Ben Ortiz"),
        "desk": await person(app, "front.desk", secrets, role=Role.staff, display_name="Front Desk"),
        "root": await person(app, "clinic.root", secrets, role=Role.admin),
    }
    return Clinic(app=app, clients=[p.client for p in people.values()], **people)


@pytest_asyncio.fixture
async def clinic(app: Any, secrets_seen: set[str]) -> AsyncIterator[Clinic]:
    c = await make_clinic(app, secrets_seen)
    try:
        yield c
    finally:
        await c.aclose()


def cid() -> str:
    """A fresh client message id."""
    return uuid.uuid4().hex


async def start(p: Person, subject: str = "Question about my dose", body: str = "Hello doctor",
                category: str = "question", **extra: Any) -> dict[str, Any]:
    r = await p.client.post("/api/v1/conversations", json={
        "category": category, "subject": subject, "body": body, "client_id": cid(), **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def send(p: Person, conversation_id: int, body: str, client_id: str | None = None) -> httpx.Response:
    return await p.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                               json={"body": body, "client_id": client_id or cid()})


async def stored_messages(app: Any, conversation_id: int) -> list[Message]:
    async with app.state.session_factory() as db:
        rows = await db.exec(select(Message).where(Message.conversation_id == conversation_id)
                             .order_by(Message.seq))
        return list(rows.all())


async def audit_rows(app: Any, action: str) -> list[AuditEvent]:
    async with app.state.session_factory() as db:
        rows = await db.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
        return list(rows.all())
