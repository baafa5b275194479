"""Administration endpoints: audit search and user accounts (admins only; the
service checks the role and audits every call and every refusal)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.admin import service
from rtc_server.admin.service import AuditPage, AuditQuery, RoleChange, UserPage, UserQuery, UserRow
from rtc_server.api import ApiRoute, Call, json_response


async def audit_search(call: Call) -> Response:
    """Search the audit log, newest first (admins only; the search is audited)."""
    return json_response(await service.search_audit(call.db, call.actor, call.query))


async def list_users(call: Call) -> Response:
    """User accounts, newest first, by role and username prefix."""
    return json_response(await service.list_users(call.db, call.actor, call.query))


async def change_role(call: Call) -> Response:
    """Give an account another role (never your own; to or from admin needs
    the current password)."""
    return json_response(await service.change_role(
        call.db, call.actor, user_id=call.path_int(), role=call.body.role,
        current_password=call.body.current_password, settings=call.settings,
    ))


async def unlock_user(call: Call) -> Response:
    """Lift an account's sign-in lock."""
    return json_response(
        await service.unlock_user(call.db, call.actor, user_id=call.path_int(), settings=call.settings)
    )


_T = "admin"

routes: list[BaseRoute] = [
    ApiRoute("/admin/audit", audit_search, methods=["GET"], query=AuditQuery, response=AuditPage, tag=_T),
    ApiRoute("/admin/users", list_users, methods=["GET"], query=UserQuery, response=UserPage, tag=_T),
    ApiRoute("/admin/users/{id:int}/role", change_role, methods=["POST"], body=RoleChange,
             response=UserRow, tag=_T),
    ApiRoute("/admin/users/{id:int}/unlock", unlock_user, methods=["POST"], response=UserRow, tag=_T),
]
