"""Administration endpoints: audit search and user accounts (admins only; the
service checks the role and audits every call)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.admin import service
from rtc_server.admin.service import AuditPage, AuditQuery, RoleChange, UserPage, UserQuery, UserRow
from rtc_server.api import api_route, json_response, path_int, read_body, read_query
from rtc_server.auth.current import require_actor
from rtc_server.context import db, mailer, settings


async def audit_search(request: Request) -> Response:
    """Search the audit log, newest first (admins only; the search is audited)."""
    actor = await require_actor(request)
    query = read_query(request, AuditQuery)
    async with db(request) as session:
        return json_response(await service.search_audit(session, actor, query))


async def list_users(request: Request) -> Response:
    """User accounts, newest first, by role and username prefix."""
    actor = await require_actor(request)
    query = read_query(request, UserQuery)
    async with db(request) as session:
        return json_response(await service.list_users(session, actor, query))


async def change_role(request: Request) -> Response:
    """Give an account another role (never your own; to or from admin needs
    the current password)."""
    actor = await require_actor(request)
    user_id = path_int(request)
    body = await read_body(request, RoleChange)
    async with db(request) as session:
        return json_response(
            await service.change_role(
                session, actor, user_id=user_id, role=body.role,
                current_password=body.current_password, settings=settings(request),
                mailer=mailer(request),
            )
        )


async def unlock_user(request: Request) -> Response:
    """Lift an account's sign-in lock."""
    actor = await require_actor(request)
    user_id = path_int(request)
    async with db(request) as session:
        return json_response(
            await service.unlock_user(session, actor, user_id=user_id, settings=settings(request))
        )


_T = "admin"

routes: list[BaseRoute] = [
    api_route("/admin/audit", audit_search, methods=["GET"], query=AuditQuery, response=AuditPage,
              tag=_T),
    api_route("/admin/users", list_users, methods=["GET"], query=UserQuery, response=UserPage, tag=_T),
    api_route("/admin/users/{id:int}/role", change_role, methods=["POST"], body=RoleChange,
              response=UserRow, tag=_T),
    api_route("/admin/users/{id:int}/unlock", unlock_user, methods=["POST"], response=UserRow, tag=_T),
]
