"""Administration endpoints: audit search."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.admin import service
from rtc_server.admin.service import AuditPage, AuditQuery
from rtc_server.api import api_route, json_response, read_query
from rtc_server.auth.current import require_actor
from rtc_server.context import db


async def audit_search(request: Request) -> Response:
    """Search the audit log, newest first (admins only; the search is audited)."""
    actor = await require_actor(request)
    query = read_query(request, AuditQuery)
    async with db(request) as session:
        return json_response(await service.search_audit(session, actor, query))


routes: list[BaseRoute] = [
    api_route("/admin/audit", audit_search, methods=["GET"], query=AuditQuery, response=AuditPage,
              tag="admin"),
]
