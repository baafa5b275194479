"""Test-wide constants and helpers importable from any test module
(``from tests.harness import ...``); fixtures live in conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from rtc_server.config import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fhir-samples"


def need(what: str, reason: str) -> None:
    """Skip outside CI, fail inside it: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI: {reason}")
    pytest.skip(f"{what} unavailable: {reason}")


def make_settings(tmp_path: Path, database_url: str, smtp: object, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "smtp_url": f"smtp://127.0.0.1:{smtp.port}",  # type: ignore[attr-defined]
        "base_url": "http://testserver",
        "secret_key": "test-secret-" + "x" * 40,
        "redis_url": None,
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


async def csrf_client(app: object, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """An API client that, like the web pages, echoes the CSRF cookie."""
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=base_url  # type: ignore[arg-type]
    )
    r = await client.get("/api/v1/auth/csrf")
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client
