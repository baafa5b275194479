"""The HTTP edges: a 500 still carries the security headers, slow or vanishing
request bodies, one database connection per signed-in request, and an OpenAPI
document that types parameters as the server reads them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

from rtc_server.types import MAX_ID
from tests.harness import create_user, sign_in


async def test_an_unexpected_error_still_carries_the_security_headers_and_request_id(
    client: httpx.AsyncClient, session_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Starlette answers a crash from outside the middleware stack, so the 500
    used to go out bare. Here the database breaks under a sign-in."""
    async with session_factory() as db:
        await db.exec(text("DROP TABLE rate_counter"))  # type: ignore[call-overload]
        await db.commit()
    with caplog.at_level(logging.ERROR, logger="rtc_server.errors"):
        r = await client.post("/api/v1/auth/login", json={"username": "maria.lopez", "password": "x"})
    assert r.status_code == 500
    body = r.json()["error"]
    assert body["code"] == "internal_error" and "rate_counter" not in r.text
    h = r.headers
    assert body["request_id"] == h["x-request-id"] and len(h["x-request-id"]) == 32
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == "no-store"
    assert "unhandled OperationalError on POST /api/v1/auth/login" in caplog.text


@pytest.mark.settings(body_timeout_seconds=0.2)
async def test_a_body_that_stops_half_way_times_out_with_408(client: httpx.AsyncClient) -> None:
    """It used to hold the connection for as long as the client liked."""
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"username": "mar'
        await never.wait()

    async with asyncio.timeout(5):
        r = await client.post("/api/v1/auth/login", content=stalls(),
                              headers={"Content-Type": "application/json", "Content-Length": "100"})
    assert r.status_code == 408
    assert r.json()["error"]["code"] == "body_timeout"
    assert r.headers["connection"] == "close"


async def test_a_client_that_disconnects_mid_body_is_logged_quietly(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A client going away is normal: one INFO line, no ERROR and no traceback."""
    sent: list[dict[str, Any]] = []
    incoming = [
        {"type": "http.request", "body": b'{"username": "ma', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/v1/auth/login", "raw_path": b"/api/v1/auth/login",
        "query_string": b"", "root_path": "", "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                    (b"content-length", b"100"), (b"cookie", b"rtc_csrf=tok"),
                    (b"x-csrf-token", b"tok")],
    }
    with caplog.at_level(logging.DEBUG):
        await app(scope, receive, send)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]
    assert "client disconnected during POST /api/v1/auth/login" in caplog.text


@pytest.mark.settings(mail_poll_seconds=3600)
async def test_a_signed_in_request_uses_one_database_connection(
    app: Any, client: httpx.AsyncClient, session_factory: Any, secrets_seen: set[str]
) -> None:
    """The actor used to be looked up on a connection of its own before the
    handler opened another."""
    await create_user(session_factory, "maria.lopez")
    await sign_in(client, "maria.lopez", secrets_seen)
    me = asyncio.current_task()
    checkouts: list[object] = []

    def checked_out(*_args: object) -> None:
        if asyncio.current_task() is me:  # not the audit sealer's or the mail worker's
            checkouts.append(me)

    engine = app.state.engine.sync_engine
    event.listen(engine, "checkout", checked_out)
    try:
        r = await client.get("/api/v1/account")
    finally:
        event.remove(engine, "checkout", checked_out)
    assert r.status_code == 200
    assert len(checkouts) == 1


async def test_openapi_types_parameters_as_the_server_reads_them(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    [path_id] = doc["paths"]["/api/v1/admin/users/{id}/role"]["post"]["parameters"]
    assert path_id == {"name": "id", "in": "path", "required": True,
                       "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
    params = {p["name"]: p for p in doc["paths"]["/api/v1/admin/audit"]["get"]["parameters"]}
    assert params["limit"]["schema"]["type"] == "integer"
    assert (params["limit"]["schema"]["minimum"], params["limit"]["schema"]["maximum"]) == (1, 500)
    assert params["before_id"]["schema"]["type"] == "integer"
    assert (params["since"]["schema"]["type"], params["since"]["schema"]["format"]) == (
        "string", "date-time")
    assert params["limit"]["required"] is False
    users = {p["name"]: p for p in doc["paths"]["/api/v1/admin/users"]["get"]["parameters"]}
    assert "$ref" in users["role"]["schema"]  # the Role enum
    [session_id] = doc["paths"]["/api/v1/account/sessions/{id}"]["delete"]["parameters"]
    assert session_id["schema"] == {"type": "string", "minLength": 1, "maxLength": 64}


async def test_openapi_carries_the_body_constraints(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/api/v1/openapi.json")).json()["components"]["schemas"]
    assert schemas["ForgotUsernameIn"]["properties"]["email"]["maxLength"] == 320
    assert schemas["ResetIn"]["properties"]["new_password"]["maxLength"] == 1024
    assert schemas["LoginIn"]["properties"]["username"] == {
        "type": "string", "minLength": 1, "maxLength": 200, "title": "Username"}


async def test_api_paths_answer_in_json_never_with_the_static_pages_allow_list(
    client: httpx.AsyncClient,
) -> None:
    """``/admin/users/abc/role`` used to fall through to the static pages: 405
    with ``Allow: GET, HEAD``, a method no API path has."""
    r = await client.post("/api/v1/admin/users/abc/role", json={"role": "staff"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.delete("/api/v1/auth/login")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"
    r = await client.put("/api/v1/nothing/here", json={})
    assert r.status_code == 404 and "x-request-id" in r.headers
