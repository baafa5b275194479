"""Every API route answers malformed input with a 4xx JSON error, never a 500,
signed out and signed in (patient, staff, admin), on SQLite and PostgreSQL;
control characters in any string are refused with 422 naming the field
before anything reaches the database."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import pytest_asyncio

from rtc_server.api import ApiRoute
from rtc_server.auth.models import Role
from tests.harness import create_signed_in_user

BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
IDENTITIES = ["anonymous", "patient", "staff", "admin"]

NASTY_BODIES: list[bytes] = [
    b"", b"null", b"[]", b"{}", b'"text"', b"\xff\xfe", b"{not json", b'{"a": 1}',
    b"[" * 5000 + b"]" * 5000, b'{"x": "' + b"y" * 70_000 + b'"}',
]
#: C0 controls a text field must refuse (tab, line feed and carriage return are text).
CONTROLS = ["\u0000", "\u0001", "\u0008", "\u000b", "\u001b", "\u001f"]


def _wrong_types(route: ApiRoute) -> list[bytes]:
    assert route.body_model is not None
    fields = route.body_model.model_fields
    return [
        json.dumps({name: 12345 for name in fields}).encode(),
        json.dumps({name: {"$ne": None} for name in fields}).encode(),
        json.dumps({name: "x" * 5000 for name in fields}).encode(),
        # A lone surrogate is valid JSON but not encodable text.
        ("{" + ",".join(f'"{name}": "\\ud800"' for name in fields) + "}").encode(),
        json.dumps({name: 10**30 for name in fields}).encode(),
    ]


def api_routes(app: Any) -> list[ApiRoute]:
    """Every API route, signing out last (it would end the caller's session)."""
    routes = [r for r in app.routes if isinstance(r, ApiRoute)]
    assert routes, "no API routes registered"
    return sorted(routes, key=lambda r: r.path.endswith("/auth/logout"))


def concrete(path: str, value: str = "1") -> str:
    return path.replace("{id:int}", value).replace("{id}", value)


@pytest_asyncio.fixture(params=IDENTITIES)
async def caller(
    request: pytest.FixtureRequest, make_client: Any, session_factory: Any, settings: Any,
    secrets_seen: set[str],
) -> tuple[str, httpx.AsyncClient]:
    """A client signed out, or with a full session as a patient, staff or admin."""
    client = await make_client()
    who = request.param
    if who != "anonymous":
        token = await create_signed_in_user(session_factory, settings, f"fuzz.{who}", role=Role(who))
        secrets_seen.add(token)
        client.cookies.set("rtc_session", token)
    return who, client


@BOTH_BACKENDS
async def test_no_route_answers_bad_bodies_with_a_server_error(
    app: Any, caller: tuple[str, httpx.AsyncClient]
) -> None:
    _who, client = caller
    checked = 0
    for route in api_routes(app):
        for method in sorted((route.methods or set()) - {"HEAD", "GET"}):
            path, huge_id = concrete(route.path), concrete(route.path, "9" * 25)
            bodies = NASTY_BODIES + (_wrong_types(route) if route.body_model else [])
            for body in bodies:
                r = await client.request(method, path, content=body,
                                         headers={"Content-Type": "application/json"})
                assert r.status_code < 500, (method, path, body[:40], r.text[:200])
                if r.status_code >= 400:
                    assert "error" in r.json()
                checked += 1
            if huge_id != path:
                r = await client.request(method, huge_id, json={})
                assert r.status_code < 500, (method, huge_id, r.text[:200])
    assert checked > 100


@BOTH_BACKENDS
async def test_control_characters_in_any_body_string_are_refused_naming_the_field(
    app: Any, caller: tuple[str, httpx.AsyncClient]
) -> None:
    """U+0000 used to reach PostgreSQL and answer 500 (on registration, an
    oracle for "this person is a patient here"). Now every string of every
    body is checked first: 422 naming the field, signed in or not."""
    who, client = caller
    for route in api_routes(app):
        if route.body_model is None:
            continue
        for method in sorted((route.methods or set()) - {"HEAD", "GET"}):
            for i, name in enumerate(route.body_model.model_fields):
                body = {name: f"before{CONTROLS[i % len(CONTROLS)]}after"}
                r = await client.request(method, concrete(route.path), json=body)
                if who == "anonymous" and r.status_code == 401:
                    continue  # a route that checks the session before reading the body
                assert r.status_code == 422, (method, route.path, name, r.status_code, r.text[:200])
                fields = [f["field"] for f in r.json()["error"]["fields"]]
                assert fields == [name], (route.path, name, fields)


@BOTH_BACKENDS
@pytest.mark.parametrize("caller", ["patient"], indirect=True)
async def test_control_characters_in_nested_strings_name_the_nested_field(
    caller: tuple[str, httpx.AsyncClient]
) -> None:
    _who, client = caller
    r = await client.patch("/api/v1/account/contact",
                           json={"phone": "+1 555 0100", "address": {"line": "1 Main\u0000St"}})
    assert r.status_code == 422
    assert r.json()["error"]["fields"] == [
        {"field": "address.line", "message": "Must not contain control characters."}]
    # Tab, line feed and carriage return are ordinary text.
    r = await client.patch("/api/v1/account/contact", json={"address": {"line": "1 Main St\tApt 2"}})
    assert r.status_code == 200


async def test_oversized_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/login", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
async def test_a_json_body_sent_as_another_type_gets_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = await client.post("/api/v1/auth/login", content=b'{"username": "someone", "password": "x"}',
                          headers=headers)
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"
    r = await client.post("/api/v1/auth/login", content=b'{"username": "someone", "password": "x"}',
                          headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 401


@BOTH_BACKENDS
async def test_no_query_or_path_parameter_answers_with_a_server_error(
    app: Any, caller: tuple[str, httpx.AsyncClient]
) -> None:
    who, client = caller
    routes = [r for r in api_routes(app) if r.query_model]
    assert routes, "no API route takes query parameters"
    for route in routes:
        assert route.query_model is not None
        path = re.sub(r"{[^}]+}", "1", route.path)  # a path parameter that routes
        for name in route.query_model.model_fields:
            for value in ("9" * 25, "-1", "x" * 5000, "2026-13-45T99:99", "\u00e9"):
                r = await client.get(path, params={name: value})
                assert r.status_code < 500, (route.path, name, value[:20], r.text[:200])
            for control in CONTROLS:
                r = await client.get(path, params={name: f"a{control}b"})
                assert r.status_code == 422, (who, route.path, name, r.status_code)
                assert r.json()["error"]["fields"][0]["field"] == name
    # A text path parameter (a session id) is checked the same way, before anything else.
    r = await client.delete("/api/v1/account/sessions/ab%00cd")
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "id"
