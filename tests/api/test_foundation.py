"""The API shell: health, OpenAPI, error shape, security headers, CSRF."""

from __future__ import annotations

import httpx
import pytest


async def test_healthz_says_only_ok_to_the_public(client: httpx.AsyncClient) -> None:
    """Not how many people are online, nor what database runs the site."""
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_openapi_lists_api_routes(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/legal" in doc["paths"]
    assert "LegalOut" in doc["components"]["schemas"]


async def test_api_responses_carry_security_headers_and_no_store(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/legal")
    h = r.headers
    assert "script-src 'self'" in h["content-security-policy"]
    assert "unsafe-inline" not in h["content-security-policy"]
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == "no-store"
    assert len(h["x-request-id"]) == 32


async def test_unknown_api_path_is_json_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_post_without_csrf_token_is_refused(app: object) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"  # type: ignore[arg-type]
    ) as bare:
        r = await bare.post("/api/v1/auth/logout")
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "csrf_failed"


async def test_post_from_foreign_origin_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/logout", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "bad_origin"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_migrations_build_the_schema_on_both_backends(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.json() == {"status": "ok"}


async def test_openapi_describes_every_api_route_with_its_body(app, client: httpx.AsyncClient) -> None:
    from rtc_server.api import ApiRoute, openapi_document

    doc = (await client.get("/api/v1/openapi.json")).json()
    assert doc == openapi_document(app.routes)
    api_routes = [r for r in app.routes if isinstance(r, ApiRoute)]
    assert len(api_routes) > 20
    for route in api_routes:
        path = route.path.replace("{id:int}", "{id}")
        for method in route.methods - {"HEAD"}:
            op = doc["paths"][path][method.lower()]
            if route.body_model is not None:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
