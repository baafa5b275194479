"""The visit socket: admitted participants exchange offers, answers and trickled
ICE candidates with the named peer only; the relay checks a cached room (no
query per candidate); presence changes reach everyone (a second tab replaces the
first, a closed socket says bye, ending the visit says bye to all); a waiting
patient hears of their admission live. Abuse is refused: an unknown visit, a
visit not admitted to, a peer outside the room, malformed SDP and candidates,
oversized frames and floods."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rtc_server.config import Settings
from rtc_server.rooms.models import Participant
from tests.media.visit_helpers import (
    SDP,
    api_client,
    audit_rows,
    check_in_body,
    checked_in_and_admitted,
    join,
    make_clinic,
    person,
    recv,
    recv_until,
    send,
    visit_app,
    visit_socket,
)
from tests.ws.helpers import Served, closed_with, serving

CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0}


@pytest_asyncio.fixture
async def server(settings: Settings) -> AsyncIterator[Served]:
    async with serving(settings, visit_app(settings)) as served:
        yield served


async def test_admitted_patient_and_provider_exchange_offer_answer_and_candidates(
    server, secrets_seen
) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, participant_id = await checked_in_and_admitted(server.app, clinic)
    async with visit_socket(server.port, clinic.provider) as doctor, \
            visit_socket(server.port, clinic.patient) as maria:
        d = await join(doctor, visit_id)
        assert d["peers"] == [] and d["role"] == "provider"
        assert d["ice_transport_policy"] == "all" and d["ref"] == "j"
        m = await join(maria, visit_id)
        assert [(p["peer"], p["role"], p["name"]) for p in m["peers"]] == [
            (d["peer"], "provider", "Dr. Ana Reyes, MD")]
        assert m["participant"] == participant_id
        joined = await recv_until(doctor, "peer_joined")
        assert (joined["peer"], joined["role"], joined["name"]) == (m["peer"], "patient", "Maria Lopez")

        await send(maria, {"type": "offer", "to": d["peer"], "sdp": SDP, "ref": "o1"})
        assert await recv_until(doctor, "offer") == {"type": "offer", "from": m["peer"], "sdp": SDP}
        await send(doctor, {"type": "answer", "to": m["peer"], "sdp": SDP})
        assert await recv_until(maria, "answer") == {"type": "answer", "from": d["peer"], "sdp": SDP}
        await send(maria, {"type": "ice", "to": d["peer"], "candidate": CANDIDATE})
        await send(maria, {"type": "ice", "to": d["peer"], "candidate": None})
        assert await recv_until(doctor, "ice") == {"type": "ice", "from": m["peer"], "candidate": CANDIDATE}
        assert await recv_until(doctor, "ice") == {"type": "ice", "from": m["peer"], "candidate": None}
    assert len(await audit_rows(server.session_factory, "visit.join")) == 2


async def test_trickled_candidates_are_relayed_without_reading_the_room_each_time(
    server, secrets_seen
) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    relay = server.app.state.visits.relay
    async with visit_socket(server.port, clinic.provider) as doctor, \
            visit_socket(server.port, clinic.patient) as maria:
        d = await join(doctor, visit_id)
        await join(maria, visit_id)
        await recv_until(doctor, "peer_joined")
        reads = relay.room_reads
        for _ in range(30):
            await send(maria, {"type": "ice", "to": d["peer"], "candidate": CANDIDATE})
        for _ in range(30):
            await recv_until(doctor, "ice")
    assert relay.room_reads - reads <= 1  # at most the read a join triggers, never one per candidate


async def test_a_waiting_patient_hears_of_their_admission_live(server, secrets_seen) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    async with api_client(server.app, clinic.patient) as patient, \
            api_client(server.app, clinic.provider) as provider:
        visit_id = (await patient.post("/api/v1/visits/check-in",
                                       json=check_in_body(clinic.appointment_id))).json()["visit_id"]
        async with visit_socket(server.port, clinic.patient) as maria, \
                visit_socket(server.port, clinic.provider) as console:
            await send(maria, {"type": "watch", "visit": visit_id, "ref": "w"})
            assert await recv(maria) == {"type": "watching", "visit": visit_id, "role": "patient",
                                         "ref": "w"}
            await send(console, {"type": "watch_queue"})
            assert (await recv(console))["practitioner_id"] == clinic.practitioner_id
            # Joining before admission is refused; the socket stays open.
            await send(maria, {"type": "join", "visit": visit_id, "ref": "early"})
            refused = await recv_until(maria, "error")
            assert (refused["code"], refused["ref"]) == ("not_admitted", "early")

            [waiting] = (await provider.get("/api/v1/visits/waiting-room")).json()["waiting"]
            await provider.post(f"/api/v1/visits/{visit_id}/admit",
                                json={"participant_id": waiting["participant_id"]})
            event = (await recv_until(maria, "event"))["event"]
            assert event == {"kind": "visit.participant", "visit": visit_id,
                             "participant": waiting["participant_id"], "state": "admitted"}
            assert (await recv_until(console, "event"))["event"]["kind"] == "visit.queue"
            assert (await join(maria, visit_id))["participant"] == waiting["participant_id"]


async def test_a_second_tab_replaces_the_first_and_a_closed_socket_says_bye(server, secrets_seen) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    async with visit_socket(server.port, clinic.provider) as doctor:
        await join(doctor, visit_id)
        async with visit_socket(server.port, clinic.patient) as first:
            old = (await join(first, visit_id))["peer"]
            assert (await recv_until(doctor, "peer_joined"))["peer"] == old
            async with visit_socket(server.port, clinic.patient) as second:
                new = (await join(second, visit_id))["peer"]
                assert await recv_until(first, "bye") == {"type": "bye", "peer": old, "reason": "replaced"}
                assert await recv_until(doctor, "bye") == {"type": "bye", "peer": old, "reason": "left"}
                assert (await recv_until(doctor, "peer_joined"))["peer"] == new
                # The replaced tab can no longer send to anyone.
                await send(first, {"type": "offer", "to": new, "sdp": SDP, "ref": "late"})
                assert (await recv_until(first, "error"))["code"] == "not_joined"
            assert await recv_until(doctor, "bye") == {"type": "bye", "peer": new, "reason": "left"}


async def test_ending_the_visit_says_bye_to_everyone_in_the_call(server, secrets_seen) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    async with visit_socket(server.port, clinic.provider) as doctor, \
            visit_socket(server.port, clinic.patient) as maria:
        d = await join(doctor, visit_id)
        m = await join(maria, visit_id)
        async with api_client(server.app, clinic.provider) as provider:
            assert (await provider.post(f"/api/v1/visits/{visit_id}/end")).status_code == 200
        assert await recv_until(maria, "bye") == {"type": "bye", "peer": m["peer"], "reason": "ended"}
        assert await recv_until(doctor, "bye") == {"type": "bye", "peer": d["peer"], "reason": "ended"}
        await send(maria, {"type": "join", "visit": visit_id})
        assert (await recv_until(maria, "error"))["code"] == "visit_ended"


# --- abuse ---------------------------------------------------------------------------------

async def test_joining_an_unknown_visit_or_someone_elses_is_refused_and_audited(
    server, secrets_seen
) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    stranger = await person(server.session_factory, server.settings, "jo.stranger",
                            secrets_seen=secrets_seen)
    async with visit_socket(server.port, stranger) as ws:
        for target in (visit_id, 987654):
            await send(ws, {"type": "join", "visit": target, "ref": "x"})
            assert (await recv(ws))["code"] == "not_found"
        await send(ws, {"type": "watch", "visit": visit_id})
        assert (await recv(ws))["code"] == "not_found"
    denied = [r for r in await audit_rows(server.session_factory, "visit.join") if r.outcome == "denied"]
    assert [r.actor_id for r in denied] == [stranger.user_id, stranger.user_id]


async def test_frames_to_a_peer_outside_the_room_are_refused(server, secrets_seen) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    other = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen,
                              suffix="2")
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    other_visit, _ = await checked_in_and_admitted(server.app, other)
    async with visit_socket(server.port, clinic.patient) as maria, \
            visit_socket(server.port, other.provider) as elsewhere:
        await send(maria, {"type": "offer", "to": "A" * 16, "sdp": SDP, "ref": "before"})
        assert (await recv(maria))["code"] == "not_joined"
        await join(maria, visit_id)
        outsider = (await join(elsewhere, other_visit))["peer"]
        for frame in ({"type": "offer", "to": outsider, "sdp": SDP},
                      {"type": "ice", "to": outsider, "candidate": CANDIDATE},
                      {"type": "answer", "to": "Z" * 20, "sdp": SDP}):
            await send(maria, {**frame, "ref": "r"})
            assert (await recv_until(maria, "error"))["code"] == "unknown_peer"
        await send(elsewhere, {"type": "ping", "ref": "p"})
        assert await recv(elsewhere) == {"type": "pong", "ref": "p"}  # nothing reached the outsider


@pytest.mark.parametrize(("frame", "field"), [
    ({"type": "offer", "to": "A" * 16, "sdp": "hello"}, "offer.sdp"),
    ({"type": "offer", "to": "A" * 16, "sdp": "v=0\r\nm=audio 9 RTP 0\r\n<script>\r\n"}, "offer.sdp"),
    ({"type": "offer", "to": "A" * 16, "sdp": "v=0\r\ns=-\r\n"}, "offer.sdp"),
    ({"type": "answer", "to": "short", "sdp": SDP}, "answer.to"),
    ({"type": "offer", "to": "A" * 16, "sdp": "v=0\r\n" + "a=x\r\n" * 1500}, "offer.sdp"),
    ({"type": "ice", "to": "A" * 16, "candidate": {"candidate": "<img src=x>"}}, "ice.candidate.candidate"),
    ({"type": "ice", "to": "A" * 16, "candidate": {"candidate": "candidate:1", "extra": 1}},
     "ice.candidate.extra"),
    ({"type": "join", "visit": 0}, "join.visit"),
    ({"type": "teleport"}, "frame"),
])
async def test_malformed_frames_get_bad_frame_naming_the_field(server, secrets_seen, frame, field) -> None:
    patient = await person(server.session_factory, server.settings, "ann.marsh", secrets_seen=secrets_seen)
    async with visit_socket(server.port, patient) as ws:
        await send(ws, {**frame, "ref": "bad"})
        reply = await recv(ws)
        assert (reply["type"], reply["code"], reply["ref"]) == ("error", "bad_frame", "bad")
        assert reply["message"].split(":")[0] == field
        await send(ws, {"type": "ping"})
        assert (await recv(ws))["type"] == "pong"  # still open


async def test_an_oversized_frame_closes_the_socket_with_1009(server, secrets_seen) -> None:
    patient = await person(server.session_factory, server.settings, "ann.marsh", secrets_seen=secrets_seen)
    async with visit_socket(server.port, patient) as ws:
        await ws.send(json.dumps({"type": "offer", "to": "A" * 16, "sdp": "v=0\r\n" + "a" * 40_000}))
        assert await closed_with(ws) == 1009


async def test_a_flood_of_frames_closes_the_socket_with_1008(server, secrets_seen) -> None:
    patient = await person(server.session_factory, server.settings, "ann.marsh", secrets_seen=secrets_seen)
    async with visit_socket(server.port, patient) as ws:
        for _ in range(120):
            await ws.send('{"type":"ping"}')
        assert await closed_with(ws) == 1008


async def test_no_session_or_a_foreign_origin_is_refused_before_accept(server, secrets_seen) -> None:
    patient = await person(server.session_factory, server.settings, "ann.marsh", secrets_seen=secrets_seen)
    url = f"ws://127.0.0.1:{server.port}/ws/v1/visit"
    for headers, origin in (({}, "http://testserver"), (patient.cookie, "https://evil.example")):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin=origin, additional_headers=headers):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403


async def test_many_candidates_at_once_are_within_the_rate_limit(server, secrets_seen) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    async with visit_socket(server.port, clinic.provider) as doctor, \
            visit_socket(server.port, clinic.patient) as maria:
        d = await join(doctor, visit_id)
        await join(maria, visit_id)
        await asyncio.gather(*(send(maria, {"type": "ice", "to": d["peer"], "candidate": CANDIDATE})
                               for _ in range(30)))
        for _ in range(30):
            assert (await recv_until(doctor, "ice"))["from"]


async def test_a_reconnecting_page_resumes_its_seat_and_the_call_carries_on(server, secrets_seen) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, participant_id = await checked_in_and_admitted(server.app, clinic)
    async with visit_socket(server.port, clinic.provider) as doctor:
        d = await join(doctor, visit_id)
        async with visit_socket(server.port, clinic.patient) as again:
            async with visit_socket(server.port, clinic.patient) as maria:
                m = await join(maria, visit_id)
                assert (await recv_until(doctor, "peer_joined"))["peer"] == m["peer"]
                await send(again, {"type": "join", "visit": visit_id, "resume": m["peer"]})
                resumed = await recv_until(again, "joined")
                assert (resumed["peer"], resumed["resumed"]) == (m["peer"], True)
                assert await recv_until(maria, "bye") == {"type": "bye", "peer": m["peer"],
                                                          "reason": "replaced"}
            # The old socket has closed: that takes nothing from the resumed seat.
            await send(doctor, {"type": "offer", "to": m["peer"], "sdp": SDP})
            assert (await recv_until(again, "offer"))["from"] == d["peer"]
            async with server.session_factory() as db:
                row = await db.get(Participant, participant_id)
                assert row is not None and row.peer_id == m["peer"]
        # The resumed socket closing is the peer leaving.
        assert await recv_until(doctor, "bye") == {"type": "bye", "peer": m["peer"], "reason": "left"}


async def test_resuming_someone_elses_peer_gets_a_new_one_and_steals_nothing(server, secrets_seen) -> None:
    clinic = await make_clinic(server.session_factory, server.settings, secrets_seen=secrets_seen)
    visit_id, _ = await checked_in_and_admitted(server.app, clinic)
    async with visit_socket(server.port, clinic.provider) as doctor, \
            visit_socket(server.port, clinic.patient) as maria:
        d = await join(doctor, visit_id)
        await send(maria, {"type": "join", "visit": visit_id, "resume": d["peer"]})
        m = await recv_until(maria, "joined")
        assert m["peer"] != d["peer"] and m["resumed"] is False
        await send(maria, {"type": "offer", "to": d["peer"], "sdp": SDP})
        assert (await recv_until(doctor, "offer"))["from"] == m["peer"]
        await send(doctor, {"type": "ping", "ref": "still-mine"})
        assert (await recv_until(doctor, "pong"))["ref"] == "still-mine"
