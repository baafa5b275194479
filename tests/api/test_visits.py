"""Virtual visits through the API: the Virtual Visits tab, check-in with consent,
the waiting room and its estimates, admission (once, race-free), notes, leaving,
ending, unscheduled visits, ICE servers with TURN REST credentials, and who is
refused (another patient's visit looks absent; every refusal is audited)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from sqlmodel import select

from rtc_server.auth.models import Role
from rtc_server.records.models import VisitKind
from rtc_server.rooms.models import Participant, Visit
from rtc_server.rooms.service import CONSENT_VERSION
from rtc_server.rooms.turn import IceConfig
from tests.media.visit_helpers import (
    add_practitioner,
    api_client,
    audit_rows,
    check_in_body,
    checked_in_and_admitted,
    make_clinic,
    person,
    video_appointment,
    visit_app,
)


@pytest_asyncio.fixture
async def app(settings) -> AsyncIterator[object]:
    application = visit_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_patient_sees_a_video_visit_and_checks_in_from_fifteen_minutes_before(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings, starts_in=timedelta(minutes=10))
    async with api_client(app, clinic.patient) as patient:
        listing = (await patient.get("/api/v1/visits")).json()
        [upcoming] = listing["upcoming"]
        assert upcoming["appointment_id"] == clinic.appointment_id
        assert upcoming["joinable"] is True and upcoming["state"] is None
        assert upcoming["practitioner"]["name"] == "Dr. Ana Reyes, MD"
        assert listing["consent"]["version"] == CONSENT_VERSION and listing["join_early_minutes"] == 15

        r = await patient.post("/api/v1/visits/check-in", json=check_in_body(
            clinic.appointment_id, reason="Cough for two weeks"))
        assert r.status_code == 200, r.text
        place = r.json()
        assert (place["state"], place["position"], place["estimated_wait_minutes"]) == ("waiting", 1, 0)
        assert place["ticket"] == 1

        listing = (await patient.get("/api/v1/visits")).json()
        assert listing["upcoming"][0]["state"] == "waiting"
        assert listing["upcoming"][0]["visit_id"] == place["visit_id"]
    async with session_factory() as db:
        row = (await db.exec(select(Participant))).one()
        visit = await db.get(Visit, place["visit_id"])
    assert row.consent_version == CONSENT_VERSION and row.consent_at is not None
    assert visit is not None and visit.reason == "Cough for two weeks"
    assert len(await audit_rows(session_factory, "visit.check_in")) == 1


async def test_checking_in_too_early_says_when_it_opens(app, session_factory, settings) -> None:
    clinic = await make_clinic(session_factory, settings, starts_in=timedelta(hours=2))
    async with api_client(app, clinic.patient) as patient:
        [upcoming] = (await patient.get("/api/v1/visits")).json()["upcoming"]
        assert upcoming["joinable"] is False
        opens = datetime.fromisoformat(upcoming["joinable_from"])
        assert opens == datetime.fromisoformat(upcoming["start"]) - timedelta(minutes=15)
        r = await patient.post("/api/v1/visits/check-in", json=check_in_body(clinic.appointment_id))
        assert (r.status_code, r.json()["error"]["code"]) == (409, "too_early")


async def test_check_in_needs_the_current_consent_and_a_video_appointment(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    in_person = await video_appointment(session_factory, clinic.patient, clinic.practitioner_id,
                                        start=datetime.now(UTC) + timedelta(minutes=3),
                                        kind=VisitKind.in_person)
    async with api_client(app, clinic.patient) as patient:
        r = await patient.post("/api/v1/visits/check-in", json=check_in_body(
            clinic.appointment_id, consent_version="2020-01-01"))
        assert r.status_code == 422
        assert r.json()["error"]["fields"][0]["field"] == "consent_version"
        r = await patient.post("/api/v1/visits/check-in", json=check_in_body(in_person))
        assert r.status_code == 404
        r = await patient.post("/api/v1/visits/check-in", json={"reason": "x", "consent_version": "v"})
        assert r.status_code == 422


async def test_another_patients_visit_is_not_found_and_each_attempt_is_audited(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    other = await person(session_factory, settings, "jo.stranger", given="Jo", family="Stranger")
    async with api_client(app, other) as stranger:
        assert (await stranger.get(f"/api/v1/visits/{visit_id}")).status_code == 404
        assert (await stranger.get("/api/v1/visits/999999")).status_code == 404
        r = await stranger.post("/api/v1/visits/check-in", json=check_in_body(visit_id=visit_id))
        assert r.status_code == 404
        r = await stranger.post("/api/v1/visits/check-in", json=check_in_body(clinic.appointment_id))
        assert r.status_code == 404
    denied = [row for row in await audit_rows(session_factory, "visit.read") if row.outcome == "denied"]
    assert len(denied) == 2 and all(row.actor_id == other.user_id for row in denied)
    assert [r.outcome for r in await audit_rows(session_factory, "visit.check_in")
            if r.actor_id == other.user_id] == ["denied", "denied"]


async def test_two_providers_admitting_at_once_admit_once(app, session_factory, settings) -> None:
    clinic = await make_clinic(session_factory, settings)
    async with api_client(app, clinic.patient) as patient, \
            api_client(app, clinic.provider) as provider, \
            api_client(app, clinic.provider) as provider_tab:
        visit_id = (await patient.post("/api/v1/visits/check-in",
                                       json=check_in_body(clinic.appointment_id))).json()["visit_id"]
        room = (await provider.get("/api/v1/visits/waiting-room")).json()
        [waiting] = room["waiting"]
        assert waiting["patient_name"] == "Maria Lopez" and waiting["reason"] == "Follow-up on cough"
        body = {"participant_id": waiting["participant_id"]}
        results = await asyncio.gather(
            provider.post(f"/api/v1/visits/{visit_id}/admit", json=body),
            provider_tab.post(f"/api/v1/visits/{visit_id}/admit", json=body))
        assert sorted(r.status_code for r in results) == [200, 409]
        [refused] = [r for r in results if r.status_code == 409]
        assert refused.json()["error"]["code"] == "already_admitted"
        place = (await patient.get(f"/api/v1/visits/{visit_id}/place")).json()
        assert place["state"] == "admitted" and place["position"] is None
        room = (await provider.get("/api/v1/visits/waiting-room")).json()
        assert room["waiting"] == [] and [v["visit_id"] for v in room["in_visit"]] == [visit_id]
    assert len(await audit_rows(session_factory, "visit.admit")) == 1


async def test_the_queue_follows_appointment_times_and_estimates_the_wait(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings, starts_in=timedelta(minutes=12))
    early = await person(session_factory, settings, "early.bird", given="Eli", family="Bird",
                         primary_practitioner_id=clinic.practitioner_id)
    earlier_appt = await video_appointment(session_factory, early, clinic.practitioner_id,
                                           start=datetime.now(UTC) + timedelta(minutes=2), minutes=20)
    async with api_client(app, clinic.patient) as maria, api_client(app, early) as eli:
        # Maria checks in first, but Eli's appointment is earlier: Eli is seen first.
        m = (await maria.post("/api/v1/visits/check-in", json=check_in_body(clinic.appointment_id))).json()
        e = (await eli.post("/api/v1/visits/check-in", json=check_in_body(earlier_appt))).json()
        m = (await maria.get(f"/api/v1/visits/{m['visit_id']}/place")).json()
        assert (e["position"], e["estimated_wait_minutes"]) == (1, 0)
        assert (m["position"], m["estimated_wait_minutes"]) == (2, 20)
        assert m["ticket"] == 1 and e["ticket"] == 2


async def test_a_note_from_the_provider_shows_on_the_waiting_patients_page(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    async with api_client(app, clinic.patient) as patient, \
            api_client(app, clinic.provider) as provider:
        visit_id = (await patient.post("/api/v1/visits/check-in",
                                       json=check_in_body(clinic.appointment_id))).json()["visit_id"]
        [waiting] = (await provider.get("/api/v1/visits/waiting-room")).json()["waiting"]
        r = await provider.post(f"/api/v1/visits/{visit_id}/note", json={
            "participant_id": waiting["participant_id"], "text": "Running 10 minutes late"})
        assert r.status_code == 204
        place = (await patient.get(f"/api/v1/visits/{visit_id}/place")).json()
        assert place["note"] == "Running 10 minutes late"
        # Patients cannot send notes, even in their own visit.
        r = await patient.post(f"/api/v1/visits/{visit_id}/note", json={
            "participant_id": waiting["participant_id"], "text": "hi"})
        assert r.status_code == 403


async def test_leaving_the_waiting_room_and_checking_in_again_rejoins_the_queue(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    async with api_client(app, clinic.patient) as patient:
        visit_id = (await patient.post("/api/v1/visits/check-in",
                                       json=check_in_body(clinic.appointment_id))).json()["visit_id"]
        assert (await patient.post(f"/api/v1/visits/{visit_id}/leave")).status_code == 204
        assert (await patient.get(f"/api/v1/visits/{visit_id}/place")).json()["state"] == "left"
        place = (await patient.post("/api/v1/visits/check-in",
                                    json=check_in_body(visit_id=visit_id))).json()
        assert (place["state"], place["position"]) == ("waiting", 1)


async def test_the_provider_ends_the_visit_and_the_patient_sees_it_in_past_visits(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    async with api_client(app, clinic.patient) as patient, \
            api_client(app, clinic.provider) as provider:
        assert (await patient.post(f"/api/v1/visits/{visit_id}/end")).status_code == 403
        ended = (await provider.post(f"/api/v1/visits/{visit_id}/end")).json()
        assert ended["status"] == "ended" and ended["ended_at"] and ended["started_at"]
        assert {p["state"] for p in ended["participants"]} == {"left"}
        again = await provider.post(f"/api/v1/visits/{visit_id}/end")
        assert again.status_code == 200 and again.json()["ended_at"] == ended["ended_at"]
        listing = (await patient.get("/api/v1/visits")).json()
        assert listing["upcoming"] == []
        [past] = listing["past"]
        assert past["visit_id"] == visit_id
        assert sorted(past["participants"]) == ["Dr. Ana Reyes, MD", "Maria Lopez"]
        r = await patient.post("/api/v1/visits/check-in", json=check_in_body(visit_id=visit_id))
        assert (r.status_code, r.json()["error"]["code"]) == (409, "visit_ended")


async def test_a_provider_starts_a_visit_with_their_patient_who_then_checks_in(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    stranger = await person(session_factory, settings, "no.relation", given="No", family="Relation")
    async with api_client(app, clinic.provider) as provider, \
            api_client(app, clinic.patient) as patient:
        r = await provider.post("/api/v1/visits", json={"patient_id": clinic.patient.patient_id,
                                                        "reason": "Lab follow-up"})
        assert r.status_code == 201, r.text
        visit = r.json()
        assert visit["my_role"] == "provider" and visit["my_state"] == "admitted"
        r = await provider.post("/api/v1/visits", json={"patient_id": stranger.patient_id})
        assert r.status_code == 404
        listing = (await patient.get("/api/v1/visits")).json()
        unscheduled = [u for u in listing["upcoming"] if u["appointment_id"] is None]
        assert [u["visit_id"] for u in unscheduled] == [visit["id"]] and unscheduled[0]["joinable"]
        place = (await patient.post("/api/v1/visits/check-in",
                                    json=check_in_body(visit_id=visit["id"]))).json()
        assert place["state"] == "waiting"


async def test_staff_and_admins_reach_no_visit_and_patients_no_waiting_room(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    staff = await person(session_factory, settings, "front.desk", role=Role.staff)
    admin = await person(session_factory, settings, "site.admin", role=Role.admin)
    async with api_client(app, staff) as s, api_client(app, admin) as a, \
            api_client(app, clinic.patient) as p:
        assert (await s.get(f"/api/v1/visits/{visit_id}")).status_code == 404
        assert (await a.get(f"/api/v1/visits/{visit_id}")).status_code == 404
        assert (await s.get("/api/v1/visits")).status_code == 403
        room = await s.get("/api/v1/visits/waiting-room", params={"practitioner_id": clinic.practitioner_id})
        assert room.status_code == 200 and room.json()["practitioner"]["id"] == clinic.practitioner_id
        assert (await a.get("/api/v1/visits/waiting-room")).status_code == 403
        assert (await p.get("/api/v1/visits/waiting-room")).status_code == 403


async def test_a_provider_not_linked_to_a_practitioner_is_told_so(app, session_factory, settings) -> None:
    await add_practitioner(session_factory)
    unlinked = await person(session_factory, settings, "dr.unlinked", role=Role.provider)
    async with api_client(app, unlinked) as provider:
        r = await provider.post("/api/v1/visits", json={"patient_id": 1})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "not_linked")


async def test_participants_get_ice_servers_with_turn_rest_credentials(
    app, session_factory, settings
) -> None:
    app.state.visits.ice = IceConfig(stun_urls=("stun:turn.example.org:3478",),
                                     turn_urls=("turn:turn.example.org:3478?transport=udp",),
                                     turn_secret="shared-secret-for-tests", ttl_seconds=600,
                                     relay_only=True)
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    async with api_client(app, clinic.patient) as patient:
        before = int(time.time())
        body = (await patient.get(f"/api/v1/visits/{visit_id}/ice-servers")).json()
    assert body["ice_transport_policy"] == "relay"
    stun, turn = body["ice_servers"]
    assert stun == {"urls": ["stun:turn.example.org:3478"]}
    expiry, user = turn["username"].split(":")
    assert user == f"u{clinic.patient.user_id}"
    assert before + 600 <= int(expiry) <= before + 602
    expected = base64.b64encode(hmac.new(b"shared-secret-for-tests", turn["username"].encode(),
                                         hashlib.sha1).digest()).decode()
    assert turn["credential"] == expected


async def test_device_check_results_show_in_the_waiting_room(app, session_factory, settings) -> None:
    clinic = await make_clinic(session_factory, settings)
    async with api_client(app, clinic.patient) as patient, \
            api_client(app, clinic.provider) as provider:
        r = await patient.post("/api/v1/visits/device-check", json={
            "outcome": "good", "rtt_ms": 40, "loss_percent": 0.5, "bitrate_kbps": 900})
        assert r.status_code == 204
        await patient.post("/api/v1/visits/check-in", json=check_in_body(clinic.appointment_id))
        [waiting] = (await provider.get("/api/v1/visits/waiting-room")).json()["waiting"]
        assert waiting["device_check"] == "good"
        r = await patient.post("/api/v1/visits/device-check", json={"outcome": "excellent"})
        assert r.status_code == 422
