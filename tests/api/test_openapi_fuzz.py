"""Schemathesis over ``/api/v1/openapi.json``, signed in as a patient, against
the app in process: no 5xx, and every reply matches the schema the document
gives for its status. Bounded (a few hundred cases, derandomized) so it runs
in the suite."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from rtc_server.auth.models import Role
from tests.harness import create_patient, create_user, sign_in

#: Spread over every operation (at least 4 each): bounded however many routes there are.
TOTAL_CASES = 300
#: Operations that would end the session the rest of the run needs.
LAST = ("/api/v1/auth/logout",)


def draw_cases(operation: Any, count: int) -> list[Any]:
    """``count`` cases for one operation (Hypothesis drives the generation;
    the requests are made afterwards, on the test's event loop)."""
    cases: list[Any] = []

    @hypothesis_settings(max_examples=count, database=None, derandomize=True, deadline=None,
                         suppress_health_check=list(HealthCheck))
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        cases.append(data.draw(operation.as_strategy()))

    collect()
    return cases


def as_request(case: Any) -> dict[str, Any]:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    request: dict[str, Any] = {"method": kwargs["method"], "url": kwargs["url"],
                               "params": kwargs.get("params"), "headers": dict(kwargs.get("headers") or {})}
    request["headers"].pop("Cookie", None)
    request["headers"].pop("cookie", None)
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        request["content"] = kwargs["data"]
    return request


@pytest.mark.timeout(300)
async def test_schemathesis_as_a_patient_finds_no_server_error_and_no_schema_violation(
    client: httpx.AsyncClient, session_factory: Any, secrets_seen: set[str]
) -> None:
    patient_id = await create_patient(session_factory)
    await create_user(session_factory, "maria.lopez", role=Role.patient, patient_id=patient_id)
    await sign_in(client, "maria.lopez", secrets_seen)
    doc = (await client.get("/api/v1/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(doc)
    operations = sorted((result.ok() for result in schema.get_all_operations()),
                        key=lambda op: op.path in LAST)
    assert len(operations) > 20
    per_operation = max(4, TOTAL_CASES // len(operations))
    failures: list[str] = []
    sent = 0
    answered: set[int] = set()
    for operation in operations:
        for case in draw_cases(operation, per_operation):
            request = as_request(case)
            request["headers"]["X-CSRF-Token"] = client.headers["X-CSRF-Token"]
            response = await client.request(**request)
            sent += 1
            answered.add(response.status_code)
            try:
                case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
            except AssertionError as exc:  # schemathesis reports failures as AssertionError subclasses
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}: "
                                f"{str(exc)[:300]}")
    assert sent >= 150  # many operations have few distinct cases (no parameters)
    assert {200, 401, 403, 404, 422} <= answered  # it got past validation and the session check
    assert not failures, "\n".join(failures[:20])
