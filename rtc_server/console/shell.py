"""The clinician workspace's frame: who is signed in (their real name and
credentials, from the Practitioner on file when the account is linked) and how
much waits in the queues they work, for the console's navigation.

Providers, staff and admins use the console; patients are refused (403,
audited). The counts are numbers only (no patient is named), so reading them
is not a chart access and is not audited row by row.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import and_, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, User
from rtc_server.portal.helpdesk.service import open_count
from rtc_server.portal.records.access import care_team_clause, grant_clause
from rtc_server.portal.refills.models import RefillRequest, RefillStatus
from rtc_server.records.models import Practitioner

ROLE_LABELS = {Role.provider: "Provider", Role.staff: "Front desk and help desk", Role.admin: "Administrator"}


class QueueCounts(BaseModel):
    #: Refill requests waiting for your decision (providers).
    refills: int | None = None
    #: Help-desk tickets waiting for the clinic (staff, admins).
    tickets: int | None = None


class ConsoleMeOut(BaseModel):
    user_id: int
    username: str
    #: The person's name as the clinic writes it: "Dr. Elena Marsh, MD" for a linked provider.
    name: str
    #: Credentials after the name ("MD", "NP"), when on file.
    credentials: str | None
    specialty: str | None
    role: Role
    role_label: str
    practitioner_id: int | None
    counts: QueueCounts


async def _open_refills(db: AsyncSession, actor: Actor, practitioner_id: int | None, now: datetime) -> int:
    reach = [grant_clause(actor.user_id, RefillRequest.patient_id, now)]
    if practitioner_id is not None:
        reach += [col(RefillRequest.practitioner_id) == practitioner_id,
                  and_(col(RefillRequest.practitioner_id).is_(None),
                       care_team_clause(practitioner_id, RefillRequest.patient_id))]  # type: ignore[arg-type]
    query = select(func.count()).select_from(RefillRequest).where(
        col(RefillRequest.status) == RefillStatus.requested.value, or_(*reach))  # type: ignore[arg-type]
    return int((await db.exec(query)).one())  # type: ignore[call-overload]


async def console_me(db: AsyncSession, actor: Actor, *, now: datetime) -> ConsoleMeOut:
    actor.require_role(Role.provider, Role.staff, Role.admin, action="console.me")
    user = await db.get(User, actor.user_id)
    assert user is not None
    doc = await db.get(Practitioner, user.practitioner_id) if user.practitioner_id is not None else None
    counts = QueueCounts()
    if actor.role == Role.provider:
        counts.refills = await _open_refills(db, actor, user.practitioner_id, now)
    if actor.role in (Role.staff, Role.admin):
        counts.tickets = await open_count(db)
    await db.commit()
    return ConsoleMeOut(
        user_id=actor.user_id, username=user.username,
        name=doc.display_name if doc is not None else (user.display_name or user.username),
        credentials=doc.suffix if doc is not None else None,
        specialty=doc.specialty if doc is not None else None,
        role=actor.role, role_label=ROLE_LABELS.get(actor.role, str(actor.role)),
        practitioner_id=user.practitioner_id, counts=counts,
    )


async def me(call: Call) -> Response:
    """Who you are in the console, and what waits in your queues."""
    return json_response(await console_me(call.db, call.actor, now=call.deps.clock()))


routes: list[BaseRoute] = [
    ApiRoute("/console/me", me, methods=["GET"], response=ConsoleMeOut, tag="console"),
]
