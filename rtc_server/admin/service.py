"""Administration: searching the audit log.

Only admins may search it (it is not patient data, so patients get 403 like
everyone else), and every search is itself audited, so reading the log
leaves a trace in it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field, field_validator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.audit import AuditEvent
from rtc_server.auth.accounts import normalize_username
from rtc_server.auth.current import Actor
from rtc_server.auth.models import Role, User
from rtc_server.db import as_utc

MAX_LIMIT = 500


class AuditQuery(BaseModel):
    actor: str | None = Field(default=None, max_length=200, description="Username or user id.")
    patient_id: int | None = Field(default=None, ge=1)
    action: str | None = Field(default=None, max_length=64, description="Matches as a prefix.")
    outcome: str | None = Field(default=None, max_length=16)
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    before_id: int | None = Field(default=None, ge=1)

    @field_validator("actor", "action", "outcome", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A time without a zone is read as UTC, the zone of storage.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class AuditRow(BaseModel):
    id: int
    at: datetime
    actor_id: int | None
    actor_username: str | None
    patient_id: int | None
    action: str
    resource: str | None
    outcome: str
    request_id: str | None
    ip: str | None


class AuditPage(BaseModel):
    rows: list[AuditRow]
    next_before_id: int | None


async def _actor_ids(db: AsyncSession, actor: str) -> list[int]:
    """Users matching a username, or an id (digits may be either)."""
    ids = [int(actor)] if actor.isdigit() else []
    found = (
        await db.exec(select(User.id).where(User.username_norm == normalize_username(actor)))
    ).first()
    if found is not None:
        ids.append(found)
    return ids


async def search_audit(db: AsyncSession, actor: Actor, query: AuditQuery) -> AuditPage:
    """Rows newest first, ``query.limit`` at a time; pass ``next_before_id``
    back as ``before_id`` for the next page."""
    if actor.role != Role.admin:
        await audit.record(
            db, action="audit.search", outcome="denied", actor_id=actor.user_id,
            actor_role=actor.role, request_id=actor.meta.request_id, ip=actor.meta.ip,
        )
        await db.commit()
        actor.require_role(Role.admin)
    stmt = select(AuditEvent, User.username).join(
        User, col(User.id) == col(AuditEvent.actor_id), isouter=True
    )
    empty = False
    if query.actor is not None:
        actor_ids = await _actor_ids(db, query.actor)
        empty = not actor_ids
        stmt = stmt.where(col(AuditEvent.actor_id).in_(actor_ids))
    if query.patient_id is not None:
        stmt = stmt.where(col(AuditEvent.patient_id) == query.patient_id)
    if query.action is not None:
        stmt = stmt.where(col(AuditEvent.action).startswith(query.action, autoescape=True))
    if query.outcome is not None:
        stmt = stmt.where(col(AuditEvent.outcome) == query.outcome)
    if query.since is not None:
        stmt = stmt.where(col(AuditEvent.at) >= query.since)
    if query.until is not None:
        stmt = stmt.where(col(AuditEvent.at) <= query.until)
    if query.before_id is not None:
        stmt = stmt.where(col(AuditEvent.id) < query.before_id)
    stmt = stmt.order_by(col(AuditEvent.id).desc()).limit(query.limit)
    found = [] if empty else (await db.exec(stmt)).all()
    rows = [
        AuditRow(
            id=ev.id or 0, at=as_utc(ev.at) or ev.at, actor_id=ev.actor_id, actor_username=username,
            patient_id=ev.patient_id, action=ev.action, resource=ev.resource, outcome=ev.outcome,
            request_id=ev.request_id, ip=ev.ip,
        )
        for ev, username in found
    ]
    await audit.record(
        db, action="audit.search", actor_id=actor.user_id, actor_role=actor.role,
        resource=f"rows:{len(rows)}", request_id=actor.meta.request_id, ip=actor.meta.ip,
    )
    await db.commit()
    next_before = rows[-1].id if len(rows) == query.limit else None
    return AuditPage(rows=rows, next_before_id=next_before)
