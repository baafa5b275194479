"""Guests of a visit: a provider invites an interpreter or a family member with a
single-use, expiring link; the guest waits, is admitted, and reaches nothing but
that visit (and nothing of the record)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from rtc_server.auth.models import Role
from rtc_server.rooms.models import VisitInvite
from tests.harness import csrf_client
from tests.media.visit_helpers import (
    add_practitioner,
    api_client,
    audit_rows,
    checked_in_and_admitted,
    make_clinic,
    person,
)

pytestmark = pytest.mark.settings(visit_invite_ttl_minutes=30)


def token_of(url: str) -> str:
    assert "/join.html#" in url
    return url.split("#", 1)[1]


@asynccontextmanager
async def guest_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    client = await csrf_client(app)
    try:
        yield client
    finally:
        await client.aclose()


async def invite(provider: httpx.AsyncClient, visit_id: int, label: str = "Interpreter",
                 **extra: Any) -> dict[str, Any]:
    r = await provider.post(f"/api/v1/visits/{visit_id}/invites", json={"label": label, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_an_invited_guest_waits_is_admitted_and_sees_nothing_of_the_record(
    app, session_factory, settings, secrets_seen
) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    async with api_client(app, clinic.provider) as provider, guest_client(app) as guest:
        made = await invite(provider, visit_id)
        secrets_seen.add(token_of(made["url"]))
        expires = datetime.fromisoformat(made["expires_at"])
        assert timedelta(minutes=29) < expires - datetime.now(UTC) <= timedelta(minutes=30)
        # Before redeeming, the guest is nobody.
        assert (await guest.get(f"/api/v1/visits/{visit_id}")).status_code == 401
        r = await guest.post("/api/v1/visit-invites/redeem", json={"token": token_of(made["url"])})
        assert r.status_code == 200, r.text
        assert r.json()["visit_id"] == visit_id
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("rtc_guest=") and "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        secrets_seen.add(guest.cookies["rtc_guest"])

        seen = (await guest.get(f"/api/v1/visits/{visit_id}")).json()
        assert seen["my_role"] == "guest" and seen["my_state"] == "waiting"
        assert seen["reason"] is None and seen["patient_name"] == ""
        assert "Lopez" not in str(seen) and "cough" not in str(seen)
        place = (await guest.get(f"/api/v1/visits/{visit_id}/place")).json()
        assert place["state"] == "waiting" and place["ticket"] is None

        room = (await provider.get("/api/v1/visits/waiting-room")).json()
        [waiting] = [w for w in room["waiting"] if w["role"] == "guest"]
        assert waiting["patient_name"] == "Interpreter"
        r = await provider.post(f"/api/v1/visits/{visit_id}/admit",
                                json={"participant_id": waiting["participant_id"]})
        assert r.status_code == 200, r.text
        seen = (await guest.get(f"/api/v1/visits/{visit_id}")).json()
        assert seen["my_state"] == "admitted"
        assert sorted(p["name"] for p in seen["participants"]) == [
            "Dr. Ana Reyes, MD", "Interpreter", "Maria"]  # the patient's first name only
        assert (await guest.get(f"/api/v1/visits/{visit_id}/ice-servers")).status_code == 200
        # The patient's own view names the guest by label.
        async with api_client(app, clinic.patient) as patient:
            mine = (await patient.get(f"/api/v1/visits/{visit_id}")).json()
            assert {"Interpreter", "Maria Lopez"} <= {p["name"] for p in mine["participants"]}

        # The visit ends: so does the guest's session.
        assert (await provider.post(f"/api/v1/visits/{visit_id}/end")).status_code == 200
        assert (await guest.get(f"/api/v1/visits/{visit_id}")).status_code == 401
    [row] = await audit_rows(session_factory, "visit.invite")
    assert row.outcome == "success" and row.patient_id == clinic.patient.patient_id
    assert [r.outcome for r in await audit_rows(session_factory, "visit.invite_redeem")] == ["success"]


async def test_a_link_works_once_and_not_after_it_expires(app, session_factory, settings) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    async with api_client(app, clinic.provider) as provider, guest_client(app) as first, \
            guest_client(app) as second:
        token = token_of((await invite(provider, visit_id))["url"])
        assert (await first.post("/api/v1/visit-invites/redeem", json={"token": token})).status_code == 200
        r = await second.post("/api/v1/visit-invites/redeem", json={"token": token})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "invite_used")
        assert "already been used" in r.json()["error"]["message"]
        assert "rtc_guest" not in second.cookies
        assert (await second.get(f"/api/v1/visits/{visit_id}")).status_code == 401

        late = token_of((await invite(provider, visit_id, "Daughter"))["url"])
        async with session_factory() as db:
            await db.exec(update(VisitInvite).where(VisitInvite.label == "Daughter")  # type: ignore[call-overload]
                          .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
            await db.commit()
        r = await second.post("/api/v1/visit-invites/redeem", json={"token": late})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "invite_expired")
        assert "expired" in r.json()["error"]["message"]

        r = await second.post("/api/v1/visit-invites/redeem", json={"token": "x" * 43})
        assert r.status_code == 404
        r = await second.post("/api/v1/visit-invites/redeem", json={"token": ""})
        assert r.status_code == 422
    refusals = [r for r in await audit_rows(session_factory, "visit.invite_redeem") if r.outcome == "denied"]
    assert len(refusals) == 3


async def test_a_visit_takes_four_people_at_most(app, session_factory, settings) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    async with api_client(app, clinic.provider) as provider, guest_client(app) as g1, \
            guest_client(app) as g2:
        a = token_of((await invite(provider, visit_id, "Interpreter"))["url"])
        b = token_of((await invite(provider, visit_id, "Son"))["url"])
        r = await provider.post(f"/api/v1/visits/{visit_id}/invites", json={"label": "Neighbour"})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "visit_full")
        for client, token in ((g1, a), (g2, b)):
            r = await client.post("/api/v1/visit-invites/redeem", json={"token": token})
            assert r.status_code == 200
        room = (await provider.get("/api/v1/visits/waiting-room")).json()
        for w in room["waiting"]:
            r = await provider.post(f"/api/v1/visits/{visit_id}/admit",
                                    json={"participant_id": w["participant_id"]})
            assert r.status_code == 200, r.text
        visit = (await provider.get(f"/api/v1/visits/{visit_id}")).json()
        assert sum(p["state"] == "admitted" for p in visit["participants"]) == 4
        # A guest who leaves frees a place for a new invitation.
        assert (await g2.post(f"/api/v1/visits/{visit_id}/leave")).status_code == 204
        assert (await provider.post(f"/api/v1/visits/{visit_id}/invites",
                                    json={"label": "Neighbour"})).status_code == 201


async def test_only_the_visits_own_provider_invites(app, session_factory, settings) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    other_practitioner = await add_practitioner(session_factory, "Ben", "Okafor")
    other = await person(session_factory, settings, "dr.okafor", role=Role.provider,
                         practitioner_id=other_practitioner, given="Ben", family="Okafor")
    async with api_client(app, other) as o, api_client(app, clinic.patient) as p:
        r = await o.post(f"/api/v1/visits/{visit_id}/invites", json={"label": "Interpreter"})
        assert r.status_code == 404
        r = await p.post(f"/api/v1/visits/{visit_id}/invites", json={"label": "Interpreter"})
        assert r.status_code in (403, 404)
    async with api_client(app, clinic.provider) as provider:
        r = await provider.post(f"/api/v1/visits/{visit_id}/invites", json={"label": ""})
        assert r.status_code == 422 and "label" in r.text
        r = await provider.post(f"/api/v1/visits/{visit_id}/invites",
                                json={"label": "Interpreter", "email": "not an address"})
        assert r.status_code == 422 and "email" in r.text
    assert [r.outcome for r in await audit_rows(session_factory, "visit.invite")][:1] == ["denied"]


async def test_the_invitation_mail_carries_the_link_and_no_health_data(
    app, session_factory, settings, smtp, drain_mail
) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    async with api_client(app, clinic.provider) as provider:
        made = await invite(provider, visit_id, email="interpreter@example.org")
        assert made["emailed"] is True
    await drain_mail()
    [mail] = smtp.to("interpreter@example.org")
    text = smtp.text(mail)
    assert made["url"] in text
    for private in ("Maria", "Lopez", "cough", "Reyes"):
        assert private not in text


async def test_a_guest_is_refused_by_every_route_but_their_visits_own(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    async with api_client(app, clinic.provider) as provider, guest_client(app) as guest:
        token = token_of((await invite(provider, visit_id))["url"])
        assert (await guest.post("/api/v1/visit-invites/redeem", json={"token": token})).status_code == 200
        doc = (await guest.get("/api/v1/openapi.json")).json()
        own = {f"/api/v1/visits/{visit_id}", f"/api/v1/visits/{visit_id}/place",
               f"/api/v1/visits/{visit_id}/leave", f"/api/v1/visits/{visit_id}/ice-servers",
               f"/api/v1/visits/{visit_id}/messages"}
        public = {"/api/v1/openapi.json"}
        answered: list[str] = []
        tried = 0
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                url = re.sub(r"\{[^}]+\}", str(visit_id), path)
                if not url.startswith("/api/v1"):
                    url = "/api/v1" + url
                if url in own:
                    continue
                tried += 1
                r = await guest.request(method.upper(), url, json={} if method != "get" else None)
                if 200 <= r.status_code < 300 and (not op.get("security") or url in public):
                    continue  # a public route (log-in page data, the clinic's name): no session needed
                if 200 <= r.status_code < 300:
                    answered.append(f"{method.upper()} {url} {r.status_code}")
        assert tried > 50
        assert answered == []
        # Another visit of the same provider is as absent to the guest as to a stranger.
        other = await provider.post("/api/v1/visits", json={"patient_id": clinic.patient.patient_id})
        assert (await guest.get(f"/api/v1/visits/{other.json()['id']}")).status_code == 404


async def _redeemed(app: Any, provider: httpx.AsyncClient, visit_id: int,
                    label: str = "Interpreter") -> tuple[httpx.AsyncClient, int]:
    """A guest client that redeemed a new invitation, and its participant id."""
    token = token_of((await invite(provider, visit_id, label))["url"])
    guest = await csrf_client(app)
    assert (await guest.post("/api/v1/visit-invites/redeem", json={"token": token})).status_code == 200
    me = (await guest.get(f"/api/v1/visits/{visit_id}")).json()
    return guest, me["my_participant_id"]


async def test_leaving_ends_a_guests_session_and_a_waiting_guest_gets_no_turn_credentials(
    app, session_factory, settings
) -> None:
    """Review finding 3: after leaving, a guest still read the visit and got TURN credentials."""
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    async with api_client(app, clinic.provider) as provider:
        guest, participant = await _redeemed(app, provider, visit_id)
        try:
            r = await guest.get(f"/api/v1/visits/{visit_id}/ice-servers")
            assert (r.status_code, r.json()["error"]["code"]) == (409, "not_admitted")
            r = await provider.post(f"/api/v1/visits/{visit_id}/admit", json={"participant_id": participant})
            assert r.status_code == 200
            assert (await guest.get(f"/api/v1/visits/{visit_id}/ice-servers")).status_code == 200
            assert (await guest.post(f"/api/v1/visits/{visit_id}/leave")).status_code == 204
            for path in ("", "/place", "/ice-servers", "/messages"):
                assert (await guest.get(f"/api/v1/visits/{visit_id}{path}")).status_code == 401, path
            # The provider sees them gone.
            visit = (await provider.get(f"/api/v1/visits/{visit_id}")).json()
            assert [p["state"] for p in visit["participants"] if p["id"] == participant] == ["left"]
        finally:
            await guest.aclose()


async def test_the_provider_revokes_an_invitation_and_removes_a_guest(
    app, session_factory, settings
) -> None:
    """Review finding 3: a provider could neither withdraw a link nor remove a guest."""
    clinic = await make_clinic(session_factory, settings)
    visit_id, patient_participant = await checked_in_and_admitted(app, clinic)
    other_practitioner = await add_practitioner(session_factory, "Ben", "Okafor")
    other = await person(session_factory, settings, "dr.okafor", role=Role.provider,
                         practitioner_id=other_practitioner, given="Ben", family="Okafor")
    async with api_client(app, clinic.provider) as provider, api_client(app, clinic.patient) as patient, \
            api_client(app, other) as stranger, guest_client(app) as late:
        unused = await invite(provider, visit_id, "Son")
        listed = (await provider.get(f"/api/v1/visits/{visit_id}/invites")).json()
        assert [(i["id"], i["label"], i["state"]) for i in listed["invites"]] == [
            (unused["id"], "Son", "pending")]
        assert "url" not in str(listed) and token_of(unused["url"]) not in str(listed)
        revoke = f"/api/v1/visit-invites/{unused['id']}/revoke"
        for who in (patient, stranger):
            assert (await who.post(revoke)).status_code in (403, 404)
            assert (await who.get(f"/api/v1/visits/{visit_id}/invites")).status_code in (403, 404)
        r = await provider.post(revoke)
        assert r.status_code == 200 and r.json()["state"] == "revoked", r.text
        assert (await provider.post(revoke)).status_code == 200  # again: no change
        r = await late.post("/api/v1/visit-invites/redeem", json={"token": token_of(unused["url"])})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "invite_revoked")
        assert "rtc_guest" not in late.cookies
        # The withdrawn link holds no place: two guests may still come.
        guest, participant = await _redeemed(app, provider, visit_id)
        second, _ = await _redeemed(app, provider, visit_id, "Daughter")
        await second.aclose()
        try:
            r = await provider.post(f"/api/v1/visits/{visit_id}/admit", json={"participant_id": participant})
            assert r.status_code == 200
            remove = f"/api/v1/visits/{visit_id}/remove"
            them = {"participant_id": participant}
            for who in (patient, stranger, guest):
                assert (await who.post(remove, json=them)).status_code in (401, 403, 404)
            r = await provider.post(remove, json={"participant_id": patient_participant})
            assert (r.status_code, r.json()["error"]["code"]) == (409, "not_a_guest")
            assert (await provider.post(remove, json={"participant_id": 10**6})).status_code == 404
            assert (await provider.post(remove, json={})).status_code == 422
            assert (await provider.post(f"/api/v1/visit-invites/{10**6}/revoke")).status_code == 404
            r = await provider.post(remove, json=them)
            assert r.status_code == 200 and r.json()["state"] == "left", r.text
            for path in ("", "/place", "/ice-servers", "/messages"):
                assert (await guest.get(f"/api/v1/visits/{visit_id}{path}")).status_code == 401, path
            assert (await provider.post(remove, json=them)).status_code == 200  # again: no change
            states = {i["label"]: i["state"]
                      for i in (await provider.get(f"/api/v1/visits/{visit_id}/invites")).json()["invites"]}
            assert states == {"Son": "revoked", "Interpreter": "revoked", "Daughter": "used"}
        finally:
            await guest.aclose()
    assert [r.outcome for r in await audit_rows(session_factory, "visit.invite_revoke")
            if r.outcome == "success"] == ["success"]
    assert [r.outcome for r in await audit_rows(session_factory, "visit.remove")
            if r.outcome == "success"] == ["success"]


async def test_redeeming_is_throttled_per_address(app, session_factory, settings) -> None:
    """Review finding 5: every wrong token wrote an audit row, without limit."""
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    async with api_client(app, clinic.provider) as provider, guest_client(app) as guessing:
        good = token_of((await invite(provider, visit_id))["url"])
        codes = [(await guessing.post("/api/v1/visit-invites/redeem",
                                      json={"token": f"wrong-{i:02d}" * 4})).status_code
                 for i in range(15)]
        assert codes[:10] == [404] * 10 and set(codes[10:]) == {429}
        r = await guessing.post("/api/v1/visit-invites/redeem", json={"token": good})
        assert r.status_code == 429 and "retry-after" in r.headers
    denied = [r for r in await audit_rows(session_factory, "visit.invite_redeem") if r.outcome == "denied"]
    assert len(denied) == 10


async def test_a_signed_in_portal_user_is_told_to_sign_out_before_using_a_link(
    app, session_factory, settings
) -> None:
    """Review finding 6: a signed-in patient used the link up and could not join."""
    clinic = await make_clinic(session_factory, settings)
    visit_id, _ = await checked_in_and_admitted(app, clinic)
    relative = await person(session_factory, settings, "rosa.lopez", given="Rosa", family="Lopez")
    async with api_client(app, clinic.provider) as provider, api_client(app, relative) as signed_in, \
            guest_client(app) as fresh:
        token = token_of((await invite(provider, visit_id, "Daughter"))["url"])
        r = await signed_in.post("/api/v1/visit-invites/redeem", json={"token": token})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "signed_in")
        assert "sign out" in r.json()["error"]["message"].lower()
        assert "rtc_guest" not in signed_in.cookies
        # The link is still good, in a browser with no portal session.
        assert (await fresh.post("/api/v1/visit-invites/redeem", json={"token": token})).status_code == 200
        assert (await fresh.get(f"/api/v1/visits/{visit_id}")).json()["my_role"] == "guest"
