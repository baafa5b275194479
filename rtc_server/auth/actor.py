"""Who is asking, and the policy checks services make about them.

Services take an ``Actor`` and decide permission themselves; nothing here
imports Starlette, so services can be called from HTTP routes, WebSocket
handlers, the CLI and tests alike.

Refusals are audited: ``Actor.require``/``require_role`` raise a domain error
carrying a ``Denial``, and the transport that maps the error to a reply writes
the ``denied`` audit row first (``api.ApiRoute`` does it for every HTTP route;
other callers use ``record_denial``). So a service never has to remember to
audit a refusal, and a refusal can never be audited twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rtc_server.auth.models import AuthSession, Role, SessionStage, User
from rtc_server.errors import Denial, DomainError, Forbidden, NotFound

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger("rtc_server.policy")


@dataclass(frozen=True)
class RequestMeta:
    """What audit rows record about a request: its id and where it came from."""

    request_id: str | None
    ip: str | None
    user_agent: str | None


#: For work that no request started (CLI, background jobs).
NO_REQUEST = RequestMeta(None, None, None)


@dataclass(frozen=True)
class Actor:
    user_id: int
    username: str
    role: Role
    patient_id: int | None
    session_id: str
    stage: SessionStage
    meta: RequestMeta

    @property
    def is_patient(self) -> bool:
        return self.role == Role.patient

    @property
    def is_clinical(self) -> bool:
        """Providers and staff work with any patient's record; admins do not."""
        return self.role in (Role.provider, Role.staff)

    def deny(
        self, error: DomainError | None = None, *, action: str | None = None,
        resource: str | None = None, patient_id: int | None = None,
    ) -> DomainError:
        """``error`` (Forbidden by default) marked as an audited refusal; raise it."""
        exc = error if error is not None else Forbidden()
        exc.denial = Denial(
            action=action, actor_id=self.user_id, actor_role=str(self.role), resource=resource,
            patient_id=patient_id, request_id=self.meta.request_id, ip=self.meta.ip,
        )
        return exc

    def require(
        self, allowed: bool, *, action: str | None = None, resource: str | None = None,
        patient_id: int | None = None, error: DomainError | None = None,
    ) -> None:
        """Refuse unless ``allowed``: Forbidden, or ``error`` (e.g. NotFound where
        the refusal must not reveal that the thing exists). Audited as ``denied``."""
        if not allowed:
            raise self.deny(error, action=action, resource=resource, patient_id=patient_id)

    def require_role(self, *roles: Role, action: str | None = None, resource: str | None = None) -> None:
        """Forbidden (audited) unless the actor has one of ``roles``."""
        self.require(self.role in roles, action=action, resource=resource)

    def require_patient_access(self, patient_id: int, *, action: str | None = None) -> None:
        """A patient reaches only their own record (others' ids look absent: 404);
        providers and staff reach any; admins none. Refusals are audited."""
        if self.is_patient:
            self.require(self.patient_id == patient_id, action=action,
                         resource=f"patient:{patient_id}", patient_id=patient_id, error=NotFound())
        else:
            self.require(self.is_clinical, action=action, resource=f"patient:{patient_id}",
                         patient_id=patient_id)


def actor_from(sess: AuthSession, user: User, request_meta: RequestMeta) -> Actor:
    return Actor(
        user_id=user.id or 0, username=user.username, role=Role(user.role),
        patient_id=user.patient_id, session_id=sess.id, stage=SessionStage(sess.stage),
        meta=request_meta,
    )


async def record_denial(db: AsyncSession, exc: DomainError, *, action: str = "access",
                        resource: str | None = None) -> bool:
    """Write ``exc``'s denial (if it carries one) as a ``denied`` audit row and
    commit; ``action``/``resource`` fill in what the service left open. The
    caller's uncommitted work is rolled back first: a refused request changes
    nothing. True if a row was written."""
    from rtc_server import audit

    d = exc.denial
    if d is None:
        return False
    await db.rollback()
    await audit.record(
        db, action=(d.action or action)[:64], outcome="denied", actor_id=d.actor_id,
        actor_role=d.actor_role, patient_id=d.patient_id,
        resource=(d.resource or resource or "")[:128] or None, request_id=d.request_id, ip=d.ip,
    )
    await db.commit()
    return True
