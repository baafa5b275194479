"""TURN with coturn on loopback (``use-auth-secret``): the server's short-lived
credentials open allocations, expired or forged ones are refused; with relay-only
set, a visit's peers (Chromium and aiortc) connect through the relay only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aioice import stun
from playwright.async_api import expect

from rtc_server.rooms.turn import ice_servers, turn_credentials
from tests.harness import server_db
from tests.media.aiortc_peer import AiortcPeer
from tests.media.turn_server import SECRET, Coturn, running_coturn
from tests.media.visit_helpers import admit_over_http, http_client, make_clinic, use_ice


@pytest_asyncio.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    async with running_coturn(tmp_path / "coturn") as server:
        yield server


async def test_coturn_accepts_the_servers_credentials_and_refuses_expired_or_forged_ones(coturn) -> None:
    config = coturn.ice(ttl_seconds=300)
    [fresh] = ice_servers(config, user="u7", now=time.time())
    relayed = await coturn.allocate(fresh["username"], fresh["credential"])
    assert relayed[0] == "127.0.0.1"

    [expired] = ice_servers(config, user="u7", now=time.time() - 600)  # expired 5 minutes ago
    assert int(expired["username"].split(":")[0]) < time.time()
    with pytest.raises(stun.TransactionFailed) as refused:
        await coturn.allocate(expired["username"], expired["credential"])
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401

    forged = turn_credentials("not-the-shared-secret", "u7", int(time.time()) + 300)
    with pytest.raises(stun.TransactionFailed):
        await coturn.allocate(*forged)
    assert SECRET not in coturn.log.read_text()  # coturn does not log the shared secret


@pytest.mark.browser
async def test_with_relay_only_a_visit_connects_through_turn_with_server_credentials(
    browser, live_server, coturn, monkeypatch, secrets_seen
) -> None:
    use_ice(monkeypatch, coturn.ice(relay_only=True), live_server.app)
    async with server_db(live_server) as factory:
        clinic = await make_clinic(factory, live_server.settings, starts_in=timedelta(minutes=5),
                                   secrets_seen=secrets_seen)
    visit_id, _ = await admit_over_http(live_server.url, clinic)
    async with http_client(live_server.url, clinic.patient) as patient_api:
        ice = (await patient_api.get(f"/api/v1/visits/{visit_id}/ice-servers")).json()
    assert ice["ice_transport_policy"] == "relay"
    assert ice["ice_servers"][0]["urls"] == [coturn.url]
    assert ice["ice_servers"][0]["username"].endswith(f":u{clinic.patient.user_id}")

    context = await browser.new_context()
    try:
        async with AiortcPeer(live_server.url.replace("http://", "ws://"), clinic.provider.token,
                              origin=live_server.url) as doctor:
            joined = await doctor.join(visit_id)
            assert joined["ice_transport_policy"] == "relay"
            await context.add_cookies([{"name": "rtc_session", "value": clinic.patient.token,
                                        "url": live_server.url}])
            page = await context.new_page()
            await page.goto(f"{live_server.url}/visit.html?visit={visit_id}")
            await asyncio.wait_for(doctor.enough.wait(), 30)
            await page.wait_for_function(
                "() => Number(document.querySelector('.tile--remote')?.dataset.framesDecoded) >= 30"
                " && document.querySelector('.tile--remote')?.dataset.relayed === 'true'",
                timeout=30_000)
            assert doctor.relayed()
            await expect(page.locator("#call-encryption")).to_contain_text("relay server (TURN)")
            await expect(page.locator("#call-encryption")).to_contain_text("never learn your IP address")
    finally:
        await context.close()
    log = coturn.log.read_text()
    assert f":u{clinic.patient.user_id}" in log and f":u{clinic.provider.user_id}" in log
