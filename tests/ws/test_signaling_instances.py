"""Two instances on one database and one Redis: a patient on instance A and a
provider on instance B complete a visit's signaling; an instance that goes
away takes no room down (the patient reconnects to the other and carries on)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import pytest_asyncio

from tests.harness import make_settings
from tests.media.visit_helpers import (
    SDP,
    checked_in_and_admitted,
    join,
    make_clinic,
    recv_until,
    send,
    visit_app,
    visit_socket,
)
from tests.ws.helpers import Served, serving

pytestmark = pytest.mark.redis


@pytest_asyncio.fixture
async def instances(tmp_path: Path, database_url: str, smtp, redis_url: str
                    ) -> AsyncIterator[tuple[Served, Served, AsyncExitStack]]:
    settings = [make_settings(tmp_path / name, database_url, smtp, redis_url=redis_url)
                for name in ("a", "b")]
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(serving(settings[0], visit_app(settings[0])))
        b_stack = AsyncExitStack()
        b = await b_stack.enter_async_context(serving(settings[1], visit_app(settings[1])))
        try:
            yield a, b, b_stack
        finally:
            await b_stack.aclose()


async def test_a_patient_on_one_instance_and_a_provider_on_another_complete_signaling(
    instances, secrets_seen
) -> None:
    a, b, b_stack = instances
    clinic = await make_clinic(a.session_factory, a.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(a.app, clinic)
    async with visit_socket(a.port, clinic.patient) as maria:
        async with visit_socket(b.port, clinic.provider) as doctor:
            d = await join(doctor, visit_id)
            m = await join(maria, visit_id)
            assert [p["peer"] for p in m["peers"]] == [d["peer"]]
            assert (await recv_until(doctor, "peer_joined"))["peer"] == m["peer"]
            await send(maria, {"type": "offer", "to": d["peer"], "sdp": SDP})
            assert (await recv_until(doctor, "offer"))["from"] == m["peer"]
            await send(doctor, {"type": "answer", "to": m["peer"], "sdp": SDP})
            assert (await recv_until(maria, "answer"))["from"] == d["peer"]

        # The provider's socket on B closed: A's patient hears the peer left.
        assert await recv_until(maria, "bye") == {"type": "bye", "peer": d["peer"], "reason": "left"}
        # Instance B goes away; the provider reconnects to A and the call carries on.
        await b_stack.aclose()
        async with visit_socket(a.port, clinic.provider) as doctor_again:
            d2 = await join(doctor_again, visit_id)
            assert [p["peer"] for p in d2["peers"]] == [m["peer"]]
            assert (await recv_until(maria, "peer_joined"))["peer"] == d2["peer"]
            await send(doctor_again, {"type": "offer", "to": m["peer"], "sdp": SDP})
            assert (await recv_until(maria, "offer"))["from"] == d2["peer"]
