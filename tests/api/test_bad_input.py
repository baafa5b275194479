"""Every API route answers malformed input with a 4xx JSON error, never a 500."""

from __future__ import annotations

import httpx

from rtc_server.api import ApiRoute

NASTY_BODIES: list[bytes] = [
    b"", b"null", b"[]", b"{}", b'"text"', b"\xff\xfe", b"{not json", b'{"a": 1}',
    b"[" * 5000 + b"]" * 5000, b'{"x": "' + b"y" * 70_000 + b'"}',
]


def _wrong_types(route: ApiRoute) -> list[bytes]:
    assert route.body_model is not None
    import json

    fields = route.body_model.model_fields
    return [
        json.dumps({name: 12345 for name in fields}).encode(),
        json.dumps({name: {"$ne": None} for name in fields}).encode(),
        json.dumps({name: "x" * 5000 for name in fields}).encode(),
        # A lone surrogate is valid JSON but not encodable text.
        ("{" + ",".join(f'"{name}": "\\ud800"' for name in fields) + "}").encode(),
        json.dumps({name: 10**30 for name in fields}).encode(),
    ]


async def test_no_route_answers_bad_bodies_with_a_server_error(
    app: object, client: httpx.AsyncClient
) -> None:
    routes = [r for r in app.routes if isinstance(r, ApiRoute)]  # type: ignore[attr-defined]
    assert routes, "no API routes registered"
    checked = 0
    for route in routes:
        for method in sorted((route.methods or set()) - {"HEAD", "GET"}):
            path = route.path.replace("{id:int}", "1").replace("{id}", "1")
            huge_id = route.path.replace("{id:int}", "9" * 25).replace("{id}", "9" * 25)
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
    assert checked > 0


async def test_oversized_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/login", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"


async def test_no_query_parameter_answers_with_a_server_error(
    app: object, make_client, session_factory, secrets_seen
) -> None:
    from tests.harness import enrolled_staff

    admin, _ = await enrolled_staff(make_client, session_factory, secrets_seen)
    routes = [r for r in app.routes if isinstance(r, ApiRoute) and r.query_model]  # type: ignore[attr-defined]
    assert routes, "no API route takes query parameters"
    for route in routes:
        assert route.query_model is not None
        for name in route.query_model.model_fields:
            for value in ("9" * 25, "-1", "\x00", "x" * 5000, "2026-13-45T99:99"):
                r = await admin.get(route.path, params={name: value})
                assert r.status_code < 500, (route.path, name, value[:20], r.text[:200])
