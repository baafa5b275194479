"""Prescription refills: a patient asks for a refill of a medication on their active
list, the prescriber approves (changing quantity or refills) or denies with a
reason, and an approved prescription reaches the pharmacy through the sender
(the outbox folder by default). Controlled substances are refused with the
office's number; one open request per medication; Idempotency-Key replays and
conflicts; another patient's ids look absent; each refusal is audited.

The helpers at the top are shared by the other ``test_refills_*``,
``test_helpdesk*`` and ``test_console_patients*`` modules.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from rtc_server.audit import AuditEvent
from rtc_server.auth.models import Role, User
from rtc_server.auth.sessions import session_cookie_name
from rtc_server.broker.base import Inbox
from rtc_server.notify.events import user_channel
from rtc_server.pharmacy.models import Pharmacy
from rtc_server.pharmacy.sender import FOLDER, OutboxPrescriptionSender, Prescription
from rtc_server.portal.refills.models import RefillRequest
from rtc_server.records.models import Medication, Practitioner
from tests.harness import create_patient, create_signed_in_user, csrf_client

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"




# --- people and records ------------------------------------------------------------------

async def signed_in(app: Any, session_factory: Any, username: str, **fields: Any) -> httpx.AsyncClient:
    """A client with a full session of a new account (``create_user``'s keywords)."""
    settings = app.state.settings
    token = await create_signed_in_user(session_factory, settings, username, **fields)
    client = await csrf_client(app)
    client.cookies.set(session_cookie_name(settings), token)
    return client


async def user_id(session_factory: Any, username: str) -> int:
    async with session_factory() as db:
        return (await db.exec(select(User.id).where(User.username == username))).one()


async def add_practitioner(session_factory: Any, given: str, family: str, *, npi: str | None = None) -> int:
    async with session_factory() as db:
        p = Practitioner(prefix="Dr.", given_name=given, family_name=family, suffix="MD",
                         specialty="Family Medicine", npi=npi)
        db.add(p)
        await db.commit()
        assert p.id is not None
        return p.id


async def provider(app: Any, session_factory: Any, username: str, practitioner_id: int | None,
                   **fields: Any) -> httpx.AsyncClient:
    client = await signed_in(app, session_factory, username, role=Role.provider, **fields)
    async with session_factory() as db:
        user = (await db.exec(select(User).where(User.username == username))).one()
        user.practitioner_id = practitioner_id
        db.add(user)
        await db.commit()
    return client


async def add_medication(session_factory: Any, patient_id: int, display: str, *, code: str | None = None,
                         prescriber_id: int | None = None, status: str = "active",
                         dosage: str | None = "1 tablet by mouth daily", refills: int | None = 2,
                         source: str = "MedicationRequest") -> int:
    async with session_factory() as db:
        med = Medication(patient_id=patient_id, prescriber_id=prescriber_id, status=status, display=display,
                         code=code, code_system=RXNORM if code else None,
                         dosage=dosage, refills_allowed=refills, source=source,
                         authored_at=datetime(2026, 1, 5, tzinfo=UTC))
        db.add(med)
        await db.commit()
        assert med.id is not None
        return med.id


async def add_pharmacy(session_factory: Any, name: str, *, city: str = "Boston", zip_code: str = "02118",
                       address: str = "10 Main Street", ncpdp: str | None = None, active: bool = True) -> int:
    now = datetime.now(UTC)
    async with session_factory() as db:
        row = Pharmacy(name=name, name_norm=" ".join(name.lower().split()), city=city, state="MA",
                       zip=zip_code,
                       address_line=address, phone="617-555-0190", fax="617-555-0191", ncpdp_id=ncpdp,
                       active=active, created_at=now, updated_at=now)
        db.add(row)
        await db.commit()
        assert row.id is not None
        return row.id


@dataclass
class Clinic:
    marsh: int  # Maria's prescriber and primary practitioner
    okafor: int  # another provider
    dr: httpx.AsyncClient  # dr.marsh, linked to ``marsh``
    maria: httpx.AsyncClient
    maria_id: int
    atorvastatin: int  # active, refillable
    oxycodone: int  # active, controlled
    stopped: int  # no longer active
    harbor: int  # a pharmacy
    corner: int  # another pharmacy


async def make_clinic(app: Any, session_factory: Any) -> Clinic:
    marsh = await add_practitioner(session_factory, "Elena", "Marsh", npi="1234567893")
    okafor = await add_practitioner(session_factory, "Samuel", "Okafor")
    dr = await provider(app, session_factory, "dr.marsh", marsh, display_name="Elena Marsh")
    maria_id = await create_patient(session_factory, mrn="RCC-100001")
    async with session_factory() as db:
        from rtc_server.records.models import Patient

        p = await db.get(Patient, maria_id)
        assert p is not None
        p.primary_practitioner_id = marsh
        db.add(p)
        await db.commit()
    maria = await signed_in(app, session_factory, "maria.lopez", patient_id=maria_id,
                            display_name="Maria Lopez")
    ator = await add_medication(session_factory, maria_id, "Atorvastatin 20 MG Oral Tablet", code="617310",
                                prescriber_id=marsh, dosage="1 tablet by mouth at bedtime")
    oxy = await add_medication(session_factory, maria_id, "Oxycodone Hydrochloride 5 MG Oral Tablet",
                               code="1049621", prescriber_id=marsh)
    stopped = await add_medication(session_factory, maria_id, "Amoxicillin 500 MG Oral Capsule",
                                   status="completed", prescriber_id=marsh)
    harbor = await add_pharmacy(session_factory, "Harbor Pharmacy", ncpdp="1234567")
    corner = await add_pharmacy(session_factory, "Corner Drug Store", city="Cambridge", zip_code="02139",
                                address="5 Elm Street")
    return Clinic(marsh, okafor, dr, maria, maria_id, ator, oxy, stopped, harbor, corner)


async def ask(client: httpx.AsyncClient, medication_id: int, pharmacy_id: int, *, note: str | None = None,
              key: str | None = None, **extra: Any) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    body: dict[str, Any] = {"medication_id": medication_id, "pharmacy_id": pharmacy_id, **extra}
    if note is not None:
        body["note"] = note
    return await client.post("/api/v1/refills", json=body, headers=headers)


async def audit_rows(session_factory: Any, action: str) -> list[AuditEvent]:
    async with session_factory() as db:
        return list((await db.exec(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(col(AuditEvent.id)))).all())


async def refill_rows(session_factory: Any) -> list[RefillRequest]:
    async with session_factory() as db:
        return list((await db.exec(select(RefillRequest).order_by(col(RefillRequest.id)))).all())


def pharmacy_outbox(app: Any) -> OutboxPrescriptionSender:
    return OutboxPrescriptionSender(app.state.settings.outbox_dir)


# --- the lifecycle ----------------------------------------------------------------------

async def test_patient_asks_for_a_refill_the_prescriber_approves_and_it_reaches_the_pharmacy(
    app, session_factory, smtp, drain_mail,
) -> None:
    c = await make_clinic(app, session_factory)
    page = (await c.maria.get("/api/v1/refills")).json()
    meds = {m["name"]: m for m in page["medications"]}
    assert set(meds) == {"Atorvastatin 20 MG Oral Tablet", "Oxycodone Hydrochloride 5 MG Oral Tablet"}
    assert meds["Atorvastatin 20 MG Oral Tablet"]["dosage"] == "1 tablet by mouth at bedtime"
    assert meds["Atorvastatin 20 MG Oral Tablet"]["prescriber"] == "Dr. Elena Marsh, MD"
    assert not meds["Atorvastatin 20 MG Oral Tablet"]["controlled"]
    assert meds["Oxycodone Hydrochloride 5 MG Oral Tablet"]["controlled"]
    assert page["requests"] == [] and page["preferred_pharmacy"] is None

    users = {name: await user_id(session_factory, name) for name in ("maria.lopez", "dr.marsh")}
    inbox = Inbox()
    sub = await app.state.broker.subscribe([user_channel(u) for u in users.values()], inbox.put)
    try:
        r = await ask(c.maria, c.atorvastatin, c.harbor, note="Running out on Friday")
        assert r.status_code == 201, r.text
        asked = r.json()
        assert asked["status"] == "requested" and asked["medication_name"] == "Atorvastatin 20 MG Oral Tablet"
        assert asked["pharmacy"]["name"] == "Harbor Pharmacy" and asked["provider"] == "Dr. Elena Marsh, MD"
        assert [s["status"] for s in asked["steps"]] == ["requested"]
        got = sorted([await asyncio.wait_for(inbox.get(), 5) for _ in range(2)])
        assert got == sorted([(user_channel(users["maria.lopez"]), {"kind": "refill", "id": asked["id"]}),
                              (user_channel(users["dr.marsh"]), {"kind": "refill_queue", "id": asked["id"]})])

        queue = (await c.dr.get("/api/v1/console/refills")).json()
        assert [(q["id"], q["patient"]["name"], q["note"], q["assigned_to_you"], q["refills_on_file"])
                for q in queue] == [(asked["id"], "Maria Lopez", "Running out on Friday", True, 2)]

        r = await c.dr.post(f"/api/v1/console/refills/{asked['id']}/approve",
                            json={"quantity": 90, "refills": 3, "note": "90-day supply"})
        assert r.status_code == 200, r.text
        decided = r.json()
        assert (decided["status"], decided["quantity"], decided["refills"]) == ("sent", 90, 3)
        assert decided["decided_by"] == "Elena Marsh" and decided["sent_at"] is not None
        got = [await asyncio.wait_for(inbox.get(), 5) for _ in range(4)]  # approved, then sent
        assert sorted({ch for ch, _ in got}) == sorted(user_channel(u) for u in users.values())
    finally:
        await sub.close()

    [sent] = pharmacy_outbox(app).sent()
    assert sent["message_id"] == f"refill-{asked['id']}"
    assert sent["pharmacy"]["name"] == "Harbor Pharmacy" and sent["pharmacy"]["ncpdp_id"] == "1234567"
    assert sent["medication"] == {"name": "Atorvastatin 20 MG Oral Tablet",
                                  "dosage": "1 tablet by mouth at bedtime", "code": "617310",
                                  "code_system": "http://www.nlm.nih.gov/research/umls/rxnorm"}
    assert (sent["quantity"], sent["refills"], sent["note"]) == (90, 3, "90-day supply")
    assert sent["patient"]["name"] == "Maria Lopez" and sent["patient"]["birth_date"] == "1990-05-01"
    assert sent["prescriber"] == {"name": "Dr. Elena Marsh, MD", "npi": "1234567893", "phone": None}
    folder = Path(app.state.settings.outbox_dir) / FOLDER
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in folder.iterdir())

    mine = (await c.maria.get(f"/api/v1/refills/{asked['id']}")).json()
    assert [s["status"] for s in mine["steps"]] == ["requested", "approved", "sent"]
    assert mine["decision_note"] == "90-day supply"
    page = (await c.maria.get("/api/v1/refills")).json()
    assert page["preferred_pharmacy"]["id"] == c.harbor  # remembered for next time
    assert page["medications"][0]["open_request_id"] is None  # sent: a new request may be made

    await drain_mail()
    [mail] = smtp.to("maria.lopez@example.org")
    text = smtp.text(mail)
    assert "There is an update on your request in the portal." in text
    for private in ("Atorvastatin", "Harbor", "90", "Marsh"):
        assert private not in text and private not in str(mail["Subject"])

    assert [e.outcome for e in await audit_rows(session_factory, "refill.request")] == ["success"]
    assert [e.outcome for e in await audit_rows(session_factory, "refill.approve")] == ["success"]
    assert [(e.outcome, e.patient_id) for e in await audit_rows(session_factory, "refill.send")] == [
        ("success", c.maria_id)]


async def test_provider_denies_with_a_reason_the_patient_reads(
    app, session_factory, smtp, drain_mail,
) -> None:
    c = await make_clinic(app, session_factory)
    asked = (await ask(c.maria, c.atorvastatin, c.corner)).json()
    r = await c.dr.post(f"/api/v1/console/refills/{asked['id']}/deny", json={"reason": "x"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "reason"
    r = await c.dr.post(f"/api/v1/console/refills/{asked['id']}/deny",
                        json={"reason": "We need to see you first. Please book a visit."})
    assert r.status_code == 200 and r.json()["status"] == "denied"
    mine = (await c.maria.get(f"/api/v1/refills/{asked['id']}")).json()
    assert [s["status"] for s in mine["steps"]] == ["requested", "denied"]
    assert mine["decision_note"] == "We need to see you first. Please book a visit."
    assert pharmacy_outbox(app).sent() == []
    await drain_mail()
    [mail] = smtp.to("maria.lopez@example.org")
    assert "book a visit" not in smtp.text(mail)

    # Decided once: approving now is a conflict, audited.
    r = await c.dr.post(f"/api/v1/console/refills/{asked['id']}/approve", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_decided"
    assert [e.outcome for e in await audit_rows(session_factory, "refill.approve")] == ["conflict"]
    # Denied is not open: the patient may ask again.
    assert (await ask(c.maria, c.atorvastatin, c.corner)).status_code == 201
    done = (await c.dr.get("/api/v1/console/refills", params={"status": "done"})).json()
    assert [q["status"] for q in done] == ["denied"]


async def test_controlled_substances_are_refused_with_the_office_number(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    r = await ask(c.maria, c.oxycodone, c.harbor)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "controlled_substance"
    assert "call the office" in r.json()["error"]["message"]
    assert await refill_rows(session_factory) == []
    [row] = await audit_rows(session_factory, "refill.request")
    assert (row.outcome, row.patient_id, row.resource) == ("refused", c.maria_id, f"medication:{c.oxycodone}")


async def test_the_clinic_adds_to_the_controlled_list(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    gabapentin = await add_medication(session_factory, c.maria_id, "Gabapentin 300 MG Oral Capsule",
                                      code="310431", prescriber_id=c.marsh)
    admin = await signed_in(app, session_factory, "clinic.admin", role=Role.admin)
    r = await c.dr.post("/api/v1/admin/controlled-medications", json={"name": "gabapentin"})
    assert r.status_code == 403  # admins keep the list
    r = await admin.post("/api/v1/admin/controlled-medications", json={})
    assert r.status_code == 422
    r = await admin.post("/api/v1/admin/controlled-medications",
                         json={"name": "Gabapentin", "schedule": "state law"})
    assert r.status_code == 201, r.text
    page = (await c.maria.get("/api/v1/refills")).json()
    assert {m["name"]: m["controlled"] for m in page["medications"]}["Gabapentin 300 MG Oral Capsule"]
    assert (await ask(c.maria, gabapentin, c.harbor)).json()["error"]["code"] == "controlled_substance"
    listed = (await c.dr.get("/api/v1/admin/controlled-medications")).json()
    assert [a["name"] for a in listed] == ["gabapentin"]
    addition = (await admin.get("/api/v1/admin/controlled-medications")).json()[0]["id"]
    assert (await admin.delete(f"/api/v1/admin/controlled-medications/{addition}")).status_code == 204
    assert (await ask(c.maria, gabapentin, c.harbor)).status_code == 201


async def test_one_open_request_per_medication(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    first = await ask(c.maria, c.atorvastatin, c.harbor)
    assert first.status_code == 201
    again = await ask(c.maria, c.atorvastatin, c.corner, note="Other pharmacy please")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_requested"
    assert len(await refill_rows(session_factory)) == 1
    assert [e.outcome for e in await audit_rows(session_factory, "refill.request")] == ["success", "conflict"]
    # Withdrawn, it no longer holds the medication.
    r = await c.maria.post(f"/api/v1/refills/{first.json()['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert (await c.maria.post(f"/api/v1/refills/{first.json()['id']}/cancel")).status_code == 409
    assert (await ask(c.maria, c.atorvastatin, c.corner)).status_code == 201


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_a_double_click_gives_one_request(app, session_factory, backend) -> None:
    c = await make_clinic(app, session_factory)
    answers = await asyncio.gather(*(ask(c.maria, c.atorvastatin, c.harbor) for _ in range(5)))
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409, 409]
    assert len(await refill_rows(session_factory)) == 1


async def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(
    app, session_factory,
) -> None:
    c = await make_clinic(app, session_factory)
    first = await ask(c.maria, c.atorvastatin, c.harbor, key="k-7f3a")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    retry = await ask(c.maria, c.atorvastatin, c.harbor, key="k-7f3a")
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    other = await ask(c.maria, c.atorvastatin, c.corner, key="k-7f3a")
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    bad = await ask(c.maria, c.atorvastatin, c.harbor, key="bad key with spaces")
    assert bad.status_code == 422
    assert len(await refill_rows(session_factory)) == 1


async def test_retries_racing_with_one_key_give_one_request(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    answers = await asyncio.gather(*(ask(c.maria, c.atorvastatin, c.harbor, key="k-same") for _ in range(4)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(await refill_rows(session_factory)) == 1


async def test_a_medication_not_on_the_active_list_or_an_unknown_pharmacy_is_refused(
    app, session_factory,
) -> None:
    c = await make_clinic(app, session_factory)
    r = await ask(c.maria, c.stopped, c.harbor)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "medication_id"
    closed = await add_pharmacy(session_factory, "Closed Pharmacy", active=False)
    for pharmacy in (closed, 999_999):
        r = await ask(c.maria, c.atorvastatin, pharmacy)
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "pharmacy_id"
    r = await ask(c.maria, c.atorvastatin, c.harbor, note="x" * 501)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "note"
    assert await refill_rows(session_factory) == []


# --- who may see what --------------------------------------------------------------------

async def test_another_patients_medications_and_requests_look_absent_and_are_audited(
    app, session_factory,
) -> None:
    c = await make_clinic(app, session_factory)
    asked = (await ask(c.maria, c.atorvastatin, c.harbor)).json()
    james_id = await create_patient(session_factory, given="James", family="Okafor")
    james = await signed_in(app, session_factory, "james.okafor", patient_id=james_id)
    for method, path in [("GET", "/api/v1/refills/{}"), ("POST", "/api/v1/refills/{}/cancel")]:
        r = await james.request(method, path.format(asked["id"]))
        missing = await james.request(method, path.format(999_999))
        assert r.status_code == missing.status_code == 404
        assert r.json()["error"] == {**missing.json()["error"], "request_id": r.json()["error"]["request_id"]}
    r = await ask(james, c.atorvastatin, c.harbor)
    assert r.status_code == 404
    assert (await james.get("/api/v1/refills")).json()["medications"] == []
    denied = [e for e in await audit_rows(session_factory, "refill.read")
              + await audit_rows(session_factory, "refill.cancel")
              + await audit_rows(session_factory, "refill.request") if e.outcome == "denied"]
    assert len(denied) == 5
    assert {e.resource for e in denied} >= {f"refill:{asked['id']}", f"medication:{c.atorvastatin}"}
    assert (await refill_rows(session_factory))[0].status == "requested"


async def test_staff_admins_and_patients_are_refused_the_queue_and_staff_the_patient_side(
    app, session_factory,
) -> None:
    c = await make_clinic(app, session_factory)
    asked = (await ask(c.maria, c.atorvastatin, c.harbor)).json()
    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    admin = await signed_in(app, session_factory, "clinic.admin", role=Role.admin)
    for client in (staff, admin, c.maria):
        assert (await client.get("/api/v1/console/refills")).status_code == 403
        assert (await client.get(f"/api/v1/console/refills/{asked['id']}")).status_code == 403
        r = await client.post(f"/api/v1/console/refills/{asked['id']}/approve", json={})
        assert r.status_code == 403
    for client in (staff, admin, c.dr):
        assert (await client.get("/api/v1/refills")).status_code == 403
        assert (await ask(client, c.atorvastatin, c.harbor)).status_code == 403
    anonymous = await csrf_client(app)
    assert (await anonymous.get("/api/v1/refills")).status_code == 401
    assert (await anonymous.get("/api/v1/console/refills")).status_code == 401
    denied = [e for e in await audit_rows(session_factory, "refill.queue") if e.outcome == "denied"]
    assert len(denied) == 3
    assert len([e for e in await audit_rows(session_factory, "refill.approve") if e.outcome == "denied"]) == 3
    assert (await refill_rows(session_factory))[0].status == "requested"


async def test_a_provider_outside_the_care_team_needs_a_cross_cover_reason(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    asked = (await ask(c.maria, c.atorvastatin, c.harbor)).json()
    okafor = await provider(app, session_factory, "dr.okafor", c.okafor)
    assert (await okafor.get("/api/v1/console/refills")).json() == []
    r = await okafor.post(f"/api/v1/console/refills/{asked['id']}/approve", json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_cover_required"
    assert (await okafor.get("/api/v1/console/refills/999999")).status_code == 404
    [refused] = [e for e in await audit_rows(session_factory, "refill.approve") if e.outcome == "denied"]
    assert refused.patient_id == c.maria_id

    r = await okafor.post(f"/api/v1/console/patients/{c.maria_id}/cross-cover",
                          json={"reason": "Covering for Dr. Marsh this week"})
    assert r.status_code == 201, r.text
    assert [q["id"] for q in (await okafor.get("/api/v1/console/refills")).json()] == [asked["id"]]
    r = await okafor.post(f"/api/v1/console/refills/{asked['id']}/approve", json={})
    assert r.status_code == 200 and r.json()["status"] == "sent"
    [sent] = pharmacy_outbox(app).sent()
    assert sent["prescriber"]["name"] == "Dr. Samuel Okafor, MD"  # who approved it signs it


# --- the pharmacy network ----------------------------------------------------------------

class UnreachableNetwork:
    """A pharmacy network that is down (the outside world; our code is not replaced)."""

    def __init__(self) -> None:
        self.tried: list[Prescription] = []

    async def send(self, prescription: Prescription) -> None:
        self.tried.append(prescription)
        raise ConnectionError("network down")


async def test_a_prescription_the_network_did_not_take_stays_approved_and_can_be_sent_again(
    app, session_factory,
) -> None:
    c = await make_clinic(app, session_factory)
    asked = (await ask(c.maria, c.atorvastatin, c.harbor)).json()
    down = UnreachableNetwork()
    app.state.prescription_sender = down
    r = await c.dr.post(f"/api/v1/console/refills/{asked['id']}/approve", json={"refills": 0})
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["send_failed"], r.json()["send_attempts"]) == ("approved", True, 1)
    assert len(down.tried) == 1
    mine = (await c.maria.get(f"/api/v1/refills/{asked['id']}")).json()
    assert [s["status"] for s in mine["steps"]] == ["requested", "approved"]
    assert (await ask(c.maria, c.atorvastatin, c.corner)).status_code == 409  # still open
    assert [e.outcome for e in await audit_rows(session_factory, "refill.send")] == ["failed"]

    app.state.prescription_sender = None  # the network is back (the outbox)
    r = await c.dr.post(f"/api/v1/console/refills/{asked['id']}/send")
    assert r.status_code == 200 and r.json()["status"] == "sent" and not r.json()["send_failed"]
    assert len(pharmacy_outbox(app).sent()) == 1
    r = await c.dr.post(f"/api/v1/console/refills/{asked['id']}/send")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_approved"


async def test_the_outbox_file_is_json_a_person_can_read(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    asked = (await ask(c.maria, c.atorvastatin, c.harbor)).json()
    await c.dr.post(f"/api/v1/console/refills/{asked['id']}/approve", json={})
    path = Path(app.state.settings.outbox_dir) / FOLDER / f"refill-{asked['id']}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["quantity"] is None and data["refills"] is None  # as prescribed


def test_controlled_ingredients_match_whole_words_of_the_medication_name() -> None:
    from rtc_server.portal.refills.controlled import is_controlled

    for name in ("Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet", "ALPRAZOLAM 0.5 MG",
                 "24 HR Dextroamphetamine sulfate 10 MG Extended Release Oral Capsule",
                 "Zolpidem tartrate 5 MG"):
        assert is_controlled(None, name), name
    for name in ("Atorvastatin 20 MG Oral Tablet", "Metformin hydrochloride 500 MG Oral Tablet",
                 "Acetaminophen 325 MG Oral Tablet"):
        assert not is_controlled(None, name), name
    assert is_controlled("310431", "Gabapentin 300 MG Oral Capsule", codes={"310431"})
    assert is_controlled(None, "Gabapentin 300 MG Oral Capsule", names=["gabapentin"])
    assert not is_controlled(None, "Gabapentinoid-free cream", names=["gabapentin"])
    assert is_controlled(None, "Cough syrup with Codeine phosphate", names=[])


async def test_a_request_without_a_prescriber_goes_to_the_patients_care_team(app, session_factory) -> None:
    from rtc_server.records.models import Encounter

    c = await make_clinic(app, session_factory)
    leo_id = await create_patient(session_factory, given="Leo", family="Nguyen")
    leo = await signed_in(app, session_factory, "leo.nguyen", patient_id=leo_id)
    inhaler = await add_medication(session_factory, leo_id, "Fluticasone 0.044 MG/ACTUAT Inhaler",
                                   source="MedicationStatement")
    async with session_factory() as db:
        db.add(Encounter(patient_id=leo_id, practitioner_id=c.okafor, status="finished"))
        await db.commit()
    okafor = await provider(app, session_factory, "dr.okafor", c.okafor)
    okafor_user = await user_id(session_factory, "dr.okafor")
    inbox = Inbox()
    sub = await app.state.broker.subscribe([user_channel(okafor_user)], inbox.put)
    try:
        asked = (await ask(leo, inhaler, c.harbor)).json()
        assert asked["provider"] is None
        assert await asyncio.wait_for(inbox.get(), 5) == (
            user_channel(okafor_user), {"kind": "refill_queue", "id": asked["id"]})
    finally:
        await sub.close()
    [item] = (await okafor.get("/api/v1/console/refills")).json()
    assert item["id"] == asked["id"] and not item["assigned_to_you"]
    assert (await c.dr.get("/api/v1/console/refills")).json() == []  # Dr. Marsh never saw Leo
