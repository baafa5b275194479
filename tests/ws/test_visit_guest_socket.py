"""A visit's guest on the visit socket: admitted on their guest session, they watch
and join their own visit's call and exchange offers with the others; they cannot
watch any other visit or waiting room, and no other socket takes their cookie."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtc_server.config import Settings
from rtc_server.rooms.models import VisitInvite
from tests.harness import csrf_client
from tests.media.visit_helpers import (
    SDP,
    VISIT_WS,
    api_client,
    check_in_body,
    checked_in_and_admitted,
    join,
    make_clinic,
    person,
    recv,
    recv_until,
    send,
    video_appointment,
    visit_app,
    visit_socket,
)
from tests.ws.helpers import Served, closed_with, serving


@pytest_asyncio.fixture
async def server(settings: Settings) -> AsyncIterator[Served]:
    async with serving(settings, visit_app(settings)) as served:
        yield served


@asynccontextmanager
async def guest_socket(port: int, token: str, path: str = VISIT_WS) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://127.0.0.1:{port}{path}", origin="http://testserver",  # type: ignore[arg-type]
                       additional_headers={"Cookie": f"rtc_guest={token}"}, compression=None) as ws:
        assert await recv(ws) == {"type": "ready"}
        yield ws


async def _invited_guest(server: Served, visit_id: int, provider: Any) -> tuple[str, int]:
    """A redeemed invitation: (the guest session token, the guest's participant id)."""
    r = await provider.post(f"/api/v1/visits/{visit_id}/invites", json={"label": "Interpreter"})
    token = r.json()["url"].split("#", 1)[1]
    guest = await csrf_client(server.app)
    try:
        assert (await guest.post("/api/v1/visit-invites/redeem", json={"token": token})).status_code == 200
        session = guest.cookies["rtc_guest"]
        me = (await guest.get(f"/api/v1/visits/{visit_id}")).json()
    finally:
        await guest.aclose()
    return session, me["my_participant_id"]


async def test_an_admitted_guest_joins_the_call_and_trades_offers_with_the_provider(
    server, secrets_seen
) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    other_visit = None
    async with api_client(server.app, clinic.provider) as provider:
        session, participant = await _invited_guest(server, visit_id, provider)
        secrets_seen.add(session)
        other_visit = (await provider.post("/api/v1/visits",
                                           json={"patient_id": clinic.patient.patient_id})).json()["id"]
        async with guest_socket(server.port, session) as guest, \
                visit_socket(server.port, clinic.provider) as doctor:
            await send(guest, {"type": "watch", "visit": visit_id, "ref": "w"})
            assert (await recv_until(guest, "watching"))["role"] == "guest"
            # Not admitted yet: the call is closed to them.
            await send(guest, {"type": "join", "visit": visit_id, "ref": "j"})
            assert (await recv_until(guest, "error"))["code"] == "not_admitted"
            # Nothing else is theirs to watch.
            await send(guest, {"type": "watch", "visit": other_visit, "ref": "o"})
            assert (await recv_until(guest, "error"))["code"] == "not_found"

            d = await join(doctor, visit_id)
            r = await provider.post(f"/api/v1/visits/{visit_id}/admit", json={"participant_id": participant})
            assert r.status_code == 200
            g = await join(guest, visit_id)
            assert g["role"] == "guest" and g["peers"][0]["peer"] == d["peer"]
            joined = await recv_until(doctor, "peer_joined")
            assert joined["name"] == "Interpreter" and joined["role"] == "guest"
            await send(guest, {"type": "offer", "to": d["peer"], "sdp": SDP})
            offer = await recv_until(doctor, "offer")
            assert offer["from"] == g["peer"]
            # A waiting room is staff's to watch: refused, and the socket closes (4403).
            await send(guest, {"type": "watch_queue", "ref": "q"})
            assert await closed_with(guest) == 4403


async def test_the_events_socket_does_not_take_a_guest_session(server, secrets_seen) -> None:
    path = "/ws/v1/events"
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    async with api_client(server.app, clinic.provider) as provider:
        session, _ = await _invited_guest(server, visit_id, provider)
    secrets_seen.add(session)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{server.port}{path}", origin="http://testserver",  # type: ignore[arg-type]
                           additional_headers={"Cookie": f"rtc_guest={session}"}):
            pass
    assert refused.value.response.status_code == 403


async def _quiet(ws: ClientConnection, seconds: float = 0.5) -> list[Any]:
    """Every frame that arrives within ``seconds``."""
    frames: list[Any] = []
    try:
        while True:
            frames.append(await recv(ws, seconds))
    except TimeoutError:
        return frames


async def _until_closed(ws: ClientConnection, timeout: float = 5.0) -> tuple[list[Any], int | None]:
    """The frames until the server closes the socket, and its close code."""
    frames: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                frames.append(json.loads(await ws.recv()))
    except ConnectionClosed as closed:
        return frames, closed.rcvd.code if closed.rcvd else None


async def test_a_guests_socket_hears_only_its_visit_and_closes_when_the_visit_ends(
    server, secrets_seen
) -> None:
    """Review finding 2: a guest's socket followed the provider's whole waiting room
    and outlived the visit (and the guest session)."""
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    later = await person(server.session_factory, server.settings, "olga.next", given="Olga",
                         family="Next", primary_practitioner_id=clinic.practitioner_id)
    appt = await video_appointment(server.session_factory, later, clinic.practitioner_id,
                                   start=datetime.now(UTC) + timedelta(minutes=5))
    async with api_client(server.app, clinic.provider) as provider:
        session, _ = await _invited_guest(server, visit_id, provider)
        secrets_seen.add(session)
        async with guest_socket(server.port, session) as guest:
            await send(guest, {"type": "watch", "visit": visit_id, "ref": "w"})
            assert (await recv_until(guest, "watching"))["role"] == "guest"
            # Another patient enters the provider's waiting room: not the guest's business.
            async with api_client(server.app, later) as other:
                assert (await other.post("/api/v1/visits/check-in",
                                         json=check_in_body(appt))).status_code == 200
            heard = await _quiet(guest)
            assert not [f for f in heard if str(f.get("channel", "")).startswith("queue:")], heard
            assert (await provider.post(f"/api/v1/visits/{visit_id}/end")).status_code == 200
            frames, code = await _until_closed(guest)
            assert code == 4401 and {"type": "session_ended"} in frames, frames
        # A new socket on the ended visit's session is refused.
        with pytest.raises(InvalidStatus):
            async with guest_socket(server.port, session):
                pass


async def test_a_removed_guest_is_told_bye_and_their_socket_closes(server, secrets_seen) -> None:
    """Review findings 2 and 3: removing (or a guest's leaving) ends their socket too."""
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    async with api_client(server.app, clinic.provider) as provider:
        session, participant = await _invited_guest(server, visit_id, provider)
        secrets_seen.add(session)
        r = await provider.post(f"/api/v1/visits/{visit_id}/admit", json={"participant_id": participant})
        assert r.status_code == 200
        async with guest_socket(server.port, session) as guest, \
                visit_socket(server.port, clinic.provider) as doctor:
            await join(doctor, visit_id)
            g = await join(guest, visit_id)
            await recv_until(doctor, "peer_joined")
            r = await provider.post(f"/api/v1/visits/{visit_id}/remove", json={"participant_id": participant})
            assert r.status_code == 200
            frames, code = await _until_closed(guest)
            assert code == 4401 and {"type": "session_ended"} in frames, frames
            # The call's own farewell may come first (or the close may beat it).
            assert all((f["peer"], f["reason"]) == (g["peer"], "removed")
                       for f in frames if f.get("type") == "bye"), frames
            gone = await recv_until(doctor, "bye")
            assert gone["peer"] == g["peer"]


@pytest.mark.settings(ws_recheck_seconds=0.2)
async def test_a_guests_socket_closes_when_the_guest_session_expires(server, secrets_seen) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    async with api_client(server.app, clinic.provider) as provider:
        session, _ = await _invited_guest(server, visit_id, provider)
        secrets_seen.add(session)
        async with guest_socket(server.port, session) as guest:
            await send(guest, {"type": "ping", "ref": "p"})
            assert (await recv_until(guest, "pong"))["ref"] == "p"
            async with server.session_factory() as db:
                await db.exec(update(VisitInvite).values(  # type: ignore[call-overload]
                    session_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
                await db.commit()
            assert await closed_with(guest) == 4401


async def test_a_guest_link_opened_in_a_browser_with_an_expired_portal_cookie_still_works(
    server, secrets_seen
) -> None:
    """Review finding 6, on the socket: a portal cookie that no longer signs anyone in
    does not shadow the guest's session."""
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    async with api_client(server.app, clinic.provider) as provider:
        session, _ = await _invited_guest(server, visit_id, provider)
    secrets_seen.add(session)
    async with connect(f"ws://127.0.0.1:{server.port}{VISIT_WS}", origin="http://testserver",  # type: ignore[arg-type]
                       additional_headers={"Cookie": f"rtc_session=stale-token; rtc_guest={session}"},
                       compression=None) as ws:
        assert await recv(ws) == {"type": "ready"}
        await send(ws, {"type": "watch", "visit": visit_id, "ref": "w"})
        assert (await recv_until(ws, "watching"))["role"] == "guest"
