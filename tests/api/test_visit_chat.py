"""Chat in a video visit: admitted participants exchange lines, stored with the
visit on the messaging machinery (numbered, a resend stored once), in no
Messaging inbox, refused to anyone waiting or outside the visit, and kept in
the patient's record after the visit ends."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from rtc_server.chat.models import Conversation
from tests.harness import csrf_client
from tests.media.visit_helpers import (
    api_client,
    audit_rows,
    checked_in_and_admitted,
    make_clinic,
    person,
)


def line(body: str, client_id: str) -> dict[str, str]:
    return {"body": body, "client_id": client_id}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_patient_and_provider_chat_in_order_and_a_resend_is_stored_once(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    url = f"/api/v1/visits/{visit_id}/messages"
    async with api_client(app, clinic.provider) as provider, api_client(app, clinic.patient) as patient:
        assert (await patient.get(url)).json() == {"messages": [], "last_seq": 0}
        r = await provider.post(url, json=line("Hello Maria, can you hear me?", "p-1"))
        assert r.status_code == 201 and r.json()["seq"] == 1 and r.json()["created"] is True
        r = await patient.post(url, json=line("Yes, <b>loud</b> and clear", "m-1"))
        assert r.status_code == 201 and r.json()["seq"] == 2
        first = r.json()
        again = await patient.post(url, json=line("Yes, <b>loud</b> and clear", "m-1"))
        assert again.status_code == 200
        assert (again.json()["id"], again.json()["seq"], again.json()["created"]) == (first["id"], 2, False)

        # Several at once from both sides: every one numbered, none twice, no gap.
        sent = await asyncio.gather(*(
            (provider if i % 2 else patient).post(url, json=line(f"line {i}", f"burst-{i}"))
            for i in range(8)))
        assert sorted(r.json()["seq"] for r in sent) == list(range(3, 11))

        seen = (await patient.get(url)).json()
        assert [m["seq"] for m in seen["messages"]] == list(range(1, 11)) and seen["last_seq"] == 10
        hello, reply = seen["messages"][:2]
        assert (hello["sender"], hello["role"], hello["mine"]) == ("Dr. Ana Reyes, MD", "provider", False)
        assert (reply["sender"], reply["mine"], reply["body"]) == ("Maria Lopez", True,
                                                                   "Yes, <b>loud</b> and clear")
        later = (await provider.get(url, params={"after": 8})).json()
        assert [m["seq"] for m in later["messages"]] == [9, 10]
        assert (await provider.get(url, params={"after": -1})).status_code == 422
        r = await provider.post(url, json=line("", "p-2"))
        assert r.status_code == 422 and "body" in r.text
        r = await provider.post(url, json=line("hi", "bad id with spaces"))
        assert r.status_code == 422 and "client_id" in r.text


async def test_the_visits_chat_is_in_no_inbox_and_closed_to_others(app, session_factory, settings) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    url = f"/api/v1/visits/{visit_id}/messages"
    stranger = await person(session_factory, settings, "ann.marsh", given="Ann", family="Marsh")
    async with api_client(app, clinic.provider) as provider, api_client(app, clinic.patient) as patient, \
            api_client(app, stranger) as other:
        assert (await provider.post(url, json=line("Private line", "p-1"))).status_code == 201
        async with session_factory() as db:
            [conv] = (await db.exec(select(Conversation).where(Conversation.visit_id == visit_id))).all()
        inbox = (await patient.get("/api/v1/conversations")).json()
        assert inbox["conversations"] == [] and inbox["unread_total"] == 0
        assert (await patient.get(f"/api/v1/conversations/{conv.id}")).status_code == 404
        assert (await patient.get(f"/api/v1/conversations/{conv.id}/messages")).status_code == 404
        r = await patient.post(f"/api/v1/conversations/{conv.id}/messages",
                               json={"body": "through the back door", "client_id": "x-1"})
        assert r.status_code == 404
        assert (await provider.get("/api/v1/conversations")).json()["conversations"] == []
        assert (await other.get(url)).status_code == 404
        assert (await other.post(url, json=line("hello?", "o-1"))).status_code == 404


async def test_someone_waiting_cannot_chat_until_admitted_and_a_guest_then_can(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    url = f"/api/v1/visits/{visit_id}/messages"
    async with api_client(app, clinic.provider) as provider:
        made = (await provider.post(f"/api/v1/visits/{visit_id}/invites",
                                    json={"label": "Interpreter"})).json()
        guest = await csrf_client(app)
        try:
            r = await guest.post("/api/v1/visit-invites/redeem", json={"token": made["url"].split("#")[1]})
            assert r.status_code == 200
            assert (await provider.post(url, json=line("Before you came", "p-1"))).status_code == 201
            r = await guest.get(url)
            assert (r.status_code, r.json()["error"]["code"]) == (409, "not_admitted")
            r = await guest.post(url, json=line("Hello?", "g-1"))
            assert (r.status_code, r.json()["error"]["code"]) == (409, "not_admitted")
            me = (await guest.get(f"/api/v1/visits/{visit_id}")).json()
            await provider.post(f"/api/v1/visits/{visit_id}/admit",
                                json={"participant_id": me["my_participant_id"]})
            assert (await guest.post(url, json=line("I am the interpreter", "g-1"))).status_code == 201
            async with api_client(app, clinic.patient) as patient:
                await patient.post(url, json=line("Thank you", "m-1"))
            seen = (await guest.get(url)).json()["messages"]
            # What was said before the guest was admitted is not theirs to read.
            assert [(m["sender"], m["body"]) for m in seen] == [
                ("Interpreter", "I am the interpreter"),
                ("Maria", "Thank you")]  # the patient's first name only
        finally:
            await guest.aclose()
    refused = [r for r in await audit_rows(session_factory, "visit.chat_read") if r.outcome == "denied"]
    assert len(refused) == 1


async def test_the_chat_stays_with_the_visit_in_the_patients_record(app, session_factory, settings) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    url = f"/api/v1/visits/{visit_id}/messages"
    async with api_client(app, clinic.provider) as provider, api_client(app, clinic.patient) as patient:
        await provider.post(url, json=line("Take the tablets with food.", "p-1"))
        await patient.post(url, json=line("Will do.", "m-1"))
        assert (await provider.post(f"/api/v1/visits/{visit_id}/end")).status_code == 200
        r = await patient.post(url, json=line("One more thing", "m-2"))
        assert (r.status_code, r.json()["error"]["code"]) == (409, "visit_ended")
        kept = (await patient.get(url)).json()
        assert [m["body"] for m in kept["messages"]] == ["Take the tablets with food.", "Will do."]
        [past] = (await patient.get("/api/v1/visits")).json()["past"]
        assert past["visit_id"] == visit_id and past["message_count"] == 2
        assert (await provider.get(url)).status_code == 200


async def test_a_guest_reads_only_what_was_said_after_they_were_admitted(
    app, session_factory, settings
) -> None:
    """Review finding 1: an admitted guest read the whole chat, lines from before
    they were invited included."""
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    url = f"/api/v1/visits/{visit_id}/messages"
    async with api_client(app, clinic.provider) as provider, api_client(app, clinic.patient) as patient:
        assert (await patient.post(url, json=line("PRIVATE: my test result came back", "m-1"))
                ).status_code == 201
        made = (await provider.post(f"/api/v1/visits/{visit_id}/invites",
                                    json={"label": "Interpreter"})).json()
        guest = await csrf_client(app)
        try:
            r = await guest.post("/api/v1/visit-invites/redeem", json={"token": made["url"].split("#")[1]})
            assert r.status_code == 200
            # Said while the guest waits: not theirs either.
            assert (await provider.post(url, json=line("PRIVATE: and the scan", "p-1"))).status_code == 201
            me = (await guest.get(f"/api/v1/visits/{visit_id}")).json()
            r = await provider.post(f"/api/v1/visits/{visit_id}/admit",
                                    json={"participant_id": me["my_participant_id"]})
            assert r.status_code == 200
            seen = (await guest.get(url)).json()
            assert seen["messages"] == [] and "PRIVATE" not in str(seen)
            for after in (0, 1):
                assert (await guest.get(url, params={"after": after})).json()["messages"] == []
            assert (await provider.post(url, json=line("Welcome", "p-2"))).status_code == 201
            seen = (await guest.get(url)).json()
            assert [(m["seq"], m["body"]) for m in seen["messages"]] == [(3, "Welcome")]
            assert seen["last_seq"] == 3
            # The patient and the provider still read it all.
            assert [m["seq"] for m in (await patient.get(url)).json()["messages"]] == [1, 2, 3]
        finally:
            await guest.aclose()
