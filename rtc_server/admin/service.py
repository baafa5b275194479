"""Administration: searching the audit log and managing user accounts.

Only admins may do either (it is not patient data, so patients get 403 like
everyone else), and every search and change is itself audited, so reading the
log or changing a role leaves a trace in it.

Role changes keep the account model consistent: the patient role only for an
account linked to a patient record, staff roles (provider, staff, admin) only
for one that is not, and never an admin's own role (so there is always an
admin who did not just promote themselves, and no one locks themselves out).
Admin powers change hands only with the acting admin's current password, and
only while that admin still is one, so there is always at least one admin.
A staff role needs two-factor: if the account has none, every session ends
and the next sign-in must enrol.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NoReturn

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Update, exists, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.audit import AuditEvent
from rtc_server.auth import login, mfa, throttle
from rtc_server.auth.accounts import normalize_username
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role, User, UserStatus
from rtc_server.auth.sessions import end_user_sessions, sessions_changed
from rtc_server.config import Settings
from rtc_server.db import as_utc
from rtc_server.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from rtc_server.portal.account.service import require_password
from rtc_server.rules import blank_to_none
from rtc_server.types import MAX_ID, DbId

MAX_LIMIT = 500
MAX_USER_LIMIT = 200


class AuditQuery(BaseModel):
    actor: str | None = Field(default=None, max_length=200, description="Username or user id.")
    patient_id: DbId | None = None
    action: str | None = Field(default=None, max_length=64, description="Matches as a prefix.")
    outcome: str | None = Field(default=None, max_length=16)
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    before_id: DbId | None = None

    _blank = field_validator("actor", "action", "outcome", mode="before")(blank_to_none)

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


def _require_admin(actor: Actor, action: str, resource: str | None = None) -> None:
    """403 (audited as ``denied``) for anyone but an admin."""
    actor.require_role(Role.admin, action=action, resource=resource)


async def _actor_ids(db: AsyncSession, actor: str) -> list[int]:
    """Users matching a username, or an id (digits may be either)."""
    ids = [int(actor)] if actor.isdigit() and int(actor) <= MAX_ID else []
    found = (
        await db.exec(select(User.id).where(User.username_norm == normalize_username(actor)))
    ).first()
    if found is not None:
        ids.append(found)
    return ids


async def search_audit(db: AsyncSession, actor: Actor, query: AuditQuery) -> AuditPage:
    """Rows newest first, ``query.limit`` at a time; pass ``next_before_id``
    back as ``before_id`` for the next page."""
    _require_admin(actor, "audit.search")
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


# --- users -----------------------------------------------------------------

class UserQuery(BaseModel):
    role: Role | None = None
    q: str | None = Field(default=None, max_length=64, description="Username prefix.")
    limit: int = Field(default=50, ge=1, le=MAX_USER_LIMIT)
    before_id: DbId | None = None

    _blank = field_validator("role", "q", mode="before")(blank_to_none)


class UserRow(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    status: UserStatus
    mfa_enabled: bool
    created_at: datetime | None
    locked_until: datetime | None


class UserPage(BaseModel):
    rows: list[UserRow]
    next_before_id: int | None


class RoleChange(BaseModel):
    role: Role
    #: The acting admin's password, needed when the role changes to or from admin.
    current_password: str | None = Field(default=None, max_length=1024)


def _row(user: User) -> UserRow:
    return UserRow(
        id=user.id or 0, username=user.username, display_name=user.display_name, role=user.role,
        status=user.status, mfa_enabled=user.mfa_enabled, created_at=as_utc(user.created_at),
        locked_until=as_utc(user.locked_until),
    )


async def _record_user_action(
    db: AsyncSession, actor: Actor, action: str, resource: str, outcome: str = "success"
) -> None:
    await audit.record(
        db, action=action, outcome=outcome, actor_id=actor.user_id, actor_role=actor.role,
        resource=resource, request_id=actor.meta.request_id, ip=actor.meta.ip,
    )


async def list_users(db: AsyncSession, actor: Actor, query: UserQuery) -> UserPage:
    """Accounts newest first, ``query.limit`` at a time; pass ``next_before_id``
    back as ``before_id`` for the next page. Audited as ``user.search``."""
    _require_admin(actor, "user.search")
    stmt = select(User).where(col(User.role) != Role.guest)  # visit guests are not clinic accounts
    if query.role is not None:
        stmt = stmt.where(col(User.role) == query.role)
    if query.q is not None:
        prefix = normalize_username(query.q)
        stmt = stmt.where(col(User.username_norm).startswith(prefix, autoescape=True))
    if query.before_id is not None:
        stmt = stmt.where(col(User.id) < query.before_id)
    users = (await db.exec(stmt.order_by(col(User.id).desc()).limit(query.limit))).all()
    rows = [_row(u) for u in users]
    await _record_user_action(db, actor, "user.search", f"rows:{len(rows)}")
    await db.commit()
    return UserPage(rows=rows, next_before_id=rows[-1].id if len(rows) == query.limit else None)


def _role_problem(user: User, role: Role) -> str | None:
    if Role.guest in (role, user.role):
        return "Guest accounts come only from visit invitations; their role cannot change."
    if role == Role.patient and user.patient_id is None:
        return "Only an account linked to a patient record can have the patient role."
    if role != Role.patient and user.patient_id is not None:
        return "An account linked to a patient record can only have the patient role."
    return None


async def _refuse(
    db: AsyncSession, actor: Actor, resource: str, outcome: str, error: DomainError
) -> NoReturn:
    """Audit a refused role change (committing it), then raise ``error``."""
    await _record_user_action(db, actor, "role.change", resource, outcome=outcome)
    await db.commit()
    raise error


async def _reauthenticate(
    db: AsyncSession, actor: Actor, password: str | None, *, resource: str, settings: Settings,
) -> None:
    """Admin powers change hands only with the acting admin's current password
    (422 on ``current_password``; a wrong one counts toward their lockout)."""
    me = await db.get(User, actor.user_id)
    if me is None:
        await _refuse(db, actor, resource, "denied", Forbidden())
    try:
        await require_password(db, actor, me, password, settings)
    except InvalidInput as exc:
        await _refuse(db, actor, resource, "denied", exc)


def _guarded_update(*, actor_id: int, user_id: int, old: Role, new: Role) -> Update:
    """The role change as one conditional UPDATE: it applies only while the
    target still has the role we read, the actor is still an active admin, and
    (when an admin is demoted) another active admin remains. The checks run
    inside the statement, under SQLite's writer lock and, on PostgreSQL, after
    ``_lock_pair`` has serialised overlapping changes, so two admins demoting
    each other cannot both succeed."""
    acting, others = aliased(User), aliased(User)
    stmt = (
        update(User)
        .where(col(User.id) == user_id, col(User.role) == old)
        .where(exists().where(col(acting.id) == actor_id, col(acting.role) == Role.admin,
                              col(acting.status) == UserStatus.active))
        .values(role=new)
    )
    if old == Role.admin and new != Role.admin:
        stmt = stmt.where(exists().where(col(others.role) == Role.admin,
                                         col(others.status) == UserStatus.active,
                                         col(others.id) != user_id))
    return stmt


async def _lock_pair(db: AsyncSession, *ids: int) -> None:
    """Lock the actor's and the target's rows, in id order (no deadlock), so the
    guarded UPDATE's subqueries see the other change committed, not a snapshot
    from before it. PostgreSQL only: SQLite has one writer at a time already
    (and SQLAlchemy leaves FOR UPDATE out there)."""
    await db.exec(
        select(User.id).where(col(User.id).in_(sorted(set(ids))))
        .order_by(col(User.id)).with_for_update()
    )


async def _why_not_applied(db: AsyncSession, actor: Actor, user_id: int, old: Role) -> DomainError:
    """The guarded UPDATE changed nothing: re-read and say which guard held."""
    me = await db.get(User, actor.user_id, populate_existing=True)
    if me is None or me.role != Role.admin or me.status != UserStatus.active:
        return Forbidden()
    user = await db.get(User, user_id, populate_existing=True)
    if user is None:
        return NotFound("No such user.")
    if user.role != old:
        return Conflict("The role was changed meanwhile; reload and try again.", code="role_changed")
    return Conflict("This is the last active admin; make another admin first.", code="last_admin")


async def change_role(
    db: AsyncSession, actor: Actor, *, user_id: int, role: Role, current_password: str | None = None,
    settings: Settings,
) -> UserRow:
    """Give an account another role; audited as ``role.change`` with
    ``user:<id> <old>-><new>``, refusals too (outcome ``failure`` or ``denied``).

    A change to or from admin needs the acting admin's ``current_password``.
    The change is applied only if, at that moment, the actor is still an active
    admin (else Forbidden), the role is still the one read (else Conflict
    ``role_changed``) and an active admin remains (else Conflict ``last_admin``),
    so concurrent changes can never leave the site without an admin. Also
    raises Conflict ``cannot_change_own_role``, NotFound, or InvalidInput on
    ``role`` or ``current_password``. Setting the role it already has changes
    nothing (and is audited as a ``failure``)."""
    _require_admin(actor, "role.change", f"user:{user_id}")
    if user_id == actor.user_id:
        await _refuse(db, actor, f"user:{user_id}", "denied", Conflict(
            "You cannot change your own role; ask another admin.", code="cannot_change_own_role"))
    user = await db.get(User, user_id)
    if user is None:
        await _refuse(db, actor, f"user:{user_id}", "failure", NotFound("No such user."))
    old = Role(user.role)
    resource = f"user:{user_id} {old}->{role}"
    if old == role:
        await _record_user_action(db, actor, "role.change", resource, outcome="failure")
        await db.commit()
        return _row(user)
    problem = _role_problem(user, role)
    if problem:
        await _refuse(db, actor, resource, "failure", InvalidInput("role", problem))
    if Role.admin in (old, role):
        await _reauthenticate(db, actor, current_password, resource=resource, settings=settings)
    await _lock_pair(db, actor.user_id, user_id)
    result = await db.exec(  # type: ignore[call-overload]
        _guarded_update(actor_id=actor.user_id, user_id=user_id, old=old, new=role)
    )
    if result.rowcount != 1:
        await db.rollback()
        error = await _why_not_applied(db, actor, user_id, old)
        await _refuse(db, actor, resource, "denied" if error.status == 403 else "failure", error)
    if mfa.mfa_required_for(role) and not user.mfa_enabled:
        # A session opened without two-factor must not carry the new role's powers
        # (its sockets close at once).
        await end_user_sessions(db, user_id)
    else:  # the sessions stand with the new role: every instance re-reads them
        sessions_changed(db, user_id)
    await _record_user_action(db, actor, "role.change", resource)
    await db.commit()
    await db.refresh(user)
    return _row(user)


async def unlock_user(db: AsyncSession, actor: Actor, *, user_id: int, settings: Settings) -> UserRow:
    """Lift a sign-in lock: ``locked_until`` and ``failed_logins`` cleared, and
    the per-username counters ``auth.login`` keeps reset. Audited as ``account.unlock``."""
    _require_admin(actor, "account.unlock", f"user:{user_id}")
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    user.locked_until = None
    user.failed_logins = 0
    db.add(user)
    for key in (login.lock_key(settings.secret, user.username_norm),
                login.user_key(settings.secret, user.username_norm)):
        await throttle.reset(db, key)
    await _record_user_action(db, actor, "account.unlock", f"user:{user_id}")
    await db.commit()
    return _row(user)
