"""A prescription refill request carried by its conversation: the patient makes
the request with the refill API and starts a ``refill`` conversation that
carries it; both sides see the request with its status as it moves (requested,
approved and sent to the pharmacy); the provider's decision comes from the
refill queue; a controlled substance is still refused by the refill API; a
request is carried by one conversation, and only its own patient's."""

# ruff: noqa: F811 (the fixtures imported from test_chat_support are parameters here)
from __future__ import annotations

from typing import Any

from rtc_server.portal.refills.models import RefillRequest
from tests.api.test_chat_support import (  # noqa: F401 (fixtures)
    app,
    audit_rows,
    cid,
    clinic,
)
from tests.api.test_refills import add_medication, add_pharmacy


async def refill_setup(clinic: Any) -> dict[str, int]:
    factory = clinic.app.state.session_factory
    return {
        "statin": await add_medication(factory, clinic.maria.patient_id, "Atorvastatin 20 mg tablet",
                                       prescriber_id=clinic.reyes.practitioner_id),
        "oxy": await add_medication(factory, clinic.maria.patient_id, "Oxycodone 5 mg tablet",
                                    code="1049621", prescriber_id=clinic.reyes.practitioner_id),
        "harbor": await add_pharmacy(factory, "Harbor Pharmacy"),
    }


async def start_refill(p: Any, refill_id: int, **extra: Any) -> Any:
    return await p.client.post("/api/v1/conversations", json={
        "category": "refill", "subject": "Refill: Atorvastatin", "body": "Please refill my statin.",
        "client_id": cid(), "refill_request_id": refill_id, **extra})


async def test_a_refill_conversation_carries_the_request_and_shows_its_status_as_it_moves(clinic) -> None:
    ids = await refill_setup(clinic)
    made = await clinic.maria.client.post("/api/v1/refills", json={
        "medication_id": ids["statin"], "pharmacy_id": ids["harbor"], "note": "Running out Friday"})
    assert made.status_code == 201, made.text
    refill = made.json()
    started = await start_refill(clinic.maria, refill["id"])
    assert started.status_code == 201, started.text
    conv = started.json()["conversation"]
    assert conv["category"] == "refill" and conv["provider"]["name"] == "Dr. Ada Reyes, MD"
    assert (conv["refill"]["id"], conv["refill"]["status"]) == (refill["id"], "requested")
    assert conv["refill"]["medication_name"] == "Atorvastatin 20 mg tablet"
    assert conv["refill"]["pharmacy"]["name"] == "Harbor Pharmacy"

    # The provider answers in the thread and approves from the queue.
    seen = (await clinic.reyes.client.get(f"/api/v1/conversations/{conv['id']}")).json()
    assert seen["refill"]["status"] == "requested"
    r = await clinic.reyes.client.post(f"/api/v1/conversations/{conv['id']}/messages",
                                       json={"body": "Approved, at Harbor.", "client_id": cid()})
    assert r.status_code == 201
    approved = await clinic.reyes.client.post(f"/api/v1/console/refills/{refill['id']}/approve", json={})
    assert approved.status_code == 200, approved.text
    after = (await clinic.maria.client.get(f"/api/v1/conversations/{conv['id']}")).json()
    assert after["refill"]["status"] in ("approved", "sent")
    assert [s["status"] for s in after["refill"]["steps"]][:2] == ["requested", "approved"]
    # Plain conversations carry none.
    plain = await clinic.maria.client.post("/api/v1/conversations", json={
        "category": "question", "subject": "Hi", "body": "Hello", "client_id": cid()})
    assert plain.json()["conversation"]["refill"] is None


async def test_a_controlled_substance_is_still_refused_and_nothing_is_carried(clinic) -> None:
    ids = await refill_setup(clinic)
    r = await clinic.maria.client.post("/api/v1/refills", json={
        "medication_id": ids["oxy"], "pharmacy_id": ids["harbor"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "controlled_substance"
    async with clinic.app.state.session_factory() as db:
        from sqlmodel import select

        assert (await db.exec(select(RefillRequest))).all() == []


async def test_a_request_is_carried_once_only_by_its_own_patients_refill_conversation(clinic) -> None:
    ids = await refill_setup(clinic)
    refill = (await clinic.maria.client.post("/api/v1/refills", json={
        "medication_id": ids["statin"], "pharmacy_id": ids["harbor"]})).json()
    r = await start_refill(clinic.sam, refill["id"])
    assert r.status_code == 404
    [denied] = [row for row in await audit_rows(clinic.app, "chat.start") if row.outcome == "denied"]
    assert (denied.actor_id, denied.resource) == (clinic.sam.user_id, f"refill:{refill['id']}")
    r = await start_refill(clinic.maria, refill["id"], category="question")
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "category"
    assert (await start_refill(clinic.maria, refill["id"])).status_code == 201
    again = await start_refill(clinic.maria, refill["id"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "refill_has_conversation"


async def test_a_provider_outside_the_care_team_cannot_take_a_patients_refill_request(clinic) -> None:
    # Review finding 1: Dr. Ortiz (not Maria's care team) names Maria's refill
    # request; the conversation would route to its prescriber, locking him out
    # after commit (500) and leaving the request taken. Now: 404, audited, nothing kept.
    ids = await refill_setup(clinic)
    refill = (await clinic.maria.client.post("/api/v1/refills", json={
        "medication_id": ids["statin"], "pharmacy_id": ids["harbor"]})).json()
    for rid in (refill["id"] + 1, refill["id"]):  # absent and someone else's answer alike
        r = await start_refill(clinic.ortiz, rid, patient_id=clinic.maria.patient_id)
        assert r.status_code == 404, r.text
    denied = [row for row in await audit_rows(clinic.app, "chat.start") if row.outcome == "denied"]
    assert (clinic.ortiz.user_id, f"refill:{refill['id']}") in {(d.actor_id, d.resource) for d in denied}
    async with clinic.app.state.session_factory() as db:
        from sqlmodel import select

        from rtc_server.chat.models import Conversation

        assert (await db.exec(select(Conversation))).all() == []
    # Her own care team (here the front desk) may still carry it.
    r = await start_refill(clinic.desk, refill["id"], patient_id=clinic.maria.patient_id)
    assert r.status_code == 201, r.text
    assert r.json()["conversation"]["refill"]["id"] == refill["id"]
