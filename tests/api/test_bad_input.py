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
            bodies = NASTY_BODIES + (_wrong_types(route) if route.body_model else [])
            for body in bodies:
                r = await client.request(method, path, content=body,
                                         headers={"Content-Type": "application/json"})
                assert r.status_code < 500, (method, path, body[:40], r.text[:200])
                if r.status_code >= 400:
                    assert "error" in r.json()
                checked += 1
    assert checked > 0
