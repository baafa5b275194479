"""The demo clinic has a pharmacy directory, a pending refill in Dr. Marsh's queue
and help-desk tickets on both sides, so a newcomer clicks through all of it."""

from __future__ import annotations

from datetime import date

from sqlmodel import select

from rtc_server.auth.models import Role
from rtc_server.demo.clinic import DEMO_PATIENTS, build_demo_bundle
from rtc_server.fhir.importer import import_bundle
from rtc_server.portal.helpdesk.demo import seed_demo_tickets
from rtc_server.portal.refills.demo import DEMO_PHARMACIES, seed_demo_refills
from rtc_server.records.models import Patient, Practitioner
from tests.api.test_refills import provider, signed_in


async def test_the_demo_has_pharmacies_a_pending_refill_and_tickets(app, session_factory) -> None:
    async with session_factory() as db:
        await import_bundle(db, build_demo_bundle(date.today()), source="demo clinic")
        await db.commit()
    alvarez = DEMO_PATIENTS[0]
    async with session_factory() as db:
        row = (await db.exec(select(Patient).where(Patient.fhir_id == alvarez.fhir_id))).one()
        marsh = row.primary_practitioner_id
        assert marsh is not None and (await db.get(Practitioner, marsh)) is not None
    maria = await signed_in(app, session_factory, "maria.alvarez", patient_id=row.id)
    dr = await provider(app, session_factory, "dr.marsh", marsh)
    staff = await signed_in(app, session_factory, "frontdesk", role=Role.staff)

    async with session_factory() as db:
        refill = await seed_demo_refills(db)
        assert await seed_demo_tickets(db) == 2
        await db.commit()
    async with session_factory() as db:
        assert await seed_demo_refills(db) is None and await seed_demo_tickets(db) == 0  # once is enough
        await db.commit()

    page = (await maria.get("/api/v1/refills")).json()
    assert [r["id"] for r in page["requests"]] == [refill]
    assert page["requests"][0]["status"] == "requested"
    assert page["preferred_pharmacy"]["name"] == DEMO_PHARMACIES[0][0]
    assert {m["name"] for m in page["medications"]} == {m.display for m in alvarez.meds}
    found = (await maria.get("/api/v1/pharmacies")).json()
    assert {p["name"] for p in found} >= {p[0] for p in DEMO_PHARMACIES}
    queue = (await dr.get("/api/v1/console/refills")).json()
    assert [q["id"] for q in queue] == [refill] and queue[0]["assigned_to_you"]

    waiting = (await staff.get("/api/v1/console/tickets")).json()
    assert [t["requester"]["kind"] for t in waiting] == ["email"]
    mine = (await maria.get("/api/v1/help/tickets")).json()
    assert [(t["status"], t["new_reply"]) for t in mine] == [("answered", True)]
