"""Who is asking: the ``Actor`` built from the session cookie.

Services take an ``Actor`` and check permission themselves; routes only call
``require_actor`` to get one (401 when there is no full session).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from rtc_server.auth.models import AuthSession, Role, SessionStage, User
from rtc_server.auth.sessions import load_session, session_cookie_name
from rtc_server.context import RequestMeta, db, meta, settings
from rtc_server.errors import Forbidden, NotFound, Unauthorized


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

    def require_role(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden()

    def require_patient_access(self, patient_id: int) -> None:
        """A patient reaches only their own record; others' ids look absent (404)."""
        if self.is_patient:
            if self.patient_id != patient_id:
                raise NotFound()
        elif not self.is_clinical:
            raise Forbidden()


def actor_from(sess: AuthSession, user: User, request_meta: RequestMeta) -> Actor:
    return Actor(
        user_id=user.id or 0, username=user.username, role=Role(user.role),
        patient_id=user.patient_id, session_id=sess.id, stage=SessionStage(sess.stage),
        meta=request_meta,
    )


async def optional_actor(conn: HTTPConnection, *, allow_partial: bool = False) -> Actor | None:
    cfg = settings(conn)
    token = conn.cookies.get(session_cookie_name(cfg))
    if not token:
        return None
    async with db(conn) as session:
        found = await load_session(session, token, cfg)
    if found is None:
        return None
    actor = actor_from(*found, meta(conn))
    if actor.stage != SessionStage.full and not allow_partial:
        return None
    return actor


async def require_actor(conn: HTTPConnection, *, allow_partial: bool = False) -> Actor:
    actor = await optional_actor(conn, allow_partial=allow_partial)
    if actor is None:
        raise Unauthorized()
    return actor
