"""The pharmacy directory the clinic keeps: anyone signed in searches it, admins
add and edit pharmacies (others are refused and the refusal is audited), the
directory loads from FHIR Organizations of type pharmacy, and each patient's
preferred pharmacy is remembered."""

from __future__ import annotations

from typing import Any

from rtc_server.auth.models import Role
from rtc_server.pharmacy.directory import is_pharmacy_kind
from rtc_server.records.models import Organization
from tests.api.test_refills import (
    add_pharmacy,
    ask,
    audit_rows,
    make_clinic,
    signed_in,
)
from tests.harness import csrf_client

NEW = {"name": "Riverside Apothecary", "phone": "617-555-0123", "fax": "617-555-0124",
       "address_line": "40 River Street", "city": "Boston", "state": "MA", "zip": "02108",
       "ncpdp_id": "7654321"}


async def names(client: Any, q: str = "", **params: Any) -> list[str]:
    r = await client.get("/api/v1/pharmacies", params={"q": q, **params})
    assert r.status_code == 200, r.text
    return [p["name"] for p in r.json()]


async def test_anyone_signed_in_searches_by_name_street_town_or_zip(app, session_factory) -> None:
    # Harbor Pharmacy (Boston 02118) and Corner Drug Store (Cambridge 02139)
    c = await make_clinic(app, session_factory)
    await add_pharmacy(session_factory, "Closed Pharmacy", active=False)
    assert await names(c.maria) == ["Corner Drug Store", "Harbor Pharmacy"]
    assert await names(c.maria, "harb") == ["Harbor Pharmacy"]
    assert await names(c.maria, "cambridge") == ["Corner Drug Store"]
    assert await names(c.maria, "021") == ["Corner Drug Store", "Harbor Pharmacy"]
    assert await names(c.maria, "elm drug") == ["Corner Drug Store"]
    assert await names(c.maria, "100%") == []  # typed characters are text, not patterns
    assert await names(c.dr, "pharmacy") == ["Harbor Pharmacy"]
    assert (await (await csrf_client(app)).get("/api/v1/pharmacies")).status_code == 401
    one = (await c.maria.get("/api/v1/pharmacies", params={"q": "harbor"})).json()[0]
    assert (await c.maria.get(f"/api/v1/pharmacies/{one['id']}")).json()["ncpdp_id"] == "1234567"


async def test_admins_keep_the_directory_and_others_are_refused(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    admin = await signed_in(app, session_factory, "clinic.admin", role=Role.admin)
    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    for client in (c.maria, c.dr, staff):
        assert (await client.post("/api/v1/admin/pharmacies", json=NEW)).status_code == 403
        assert (await client.put(f"/api/v1/admin/pharmacies/{c.harbor}", json=NEW)).status_code == 403
    assert [e.outcome for e in await audit_rows(session_factory, "pharmacy.add")] == ["denied"] * 3

    r = await admin.post("/api/v1/admin/pharmacies", json={**NEW, "zip": "2108"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "zip"
    r = await admin.post("/api/v1/admin/pharmacies", json={**NEW, "ncpdp_id": "1234567"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "ncpdp_id"  # Harbor has it
    r = await admin.post("/api/v1/admin/pharmacies", json=NEW)
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["name"] == "Riverside Apothecary" and not added["from_records"]
    assert await names(c.maria, "river") == ["Riverside Apothecary"]

    r = await admin.put(f"/api/v1/admin/pharmacies/{added['id']}", json={**NEW, "active": False})
    assert r.status_code == 200 and not r.json()["active"]
    assert await names(c.maria, "river") == []  # out of the directory
    assert (await c.maria.get(f"/api/v1/pharmacies/{added['id']}")).status_code == 404
    assert await names(admin, "river", include_inactive="true") == ["Riverside Apothecary"]
    assert (await ask(c.maria, c.atorvastatin, added["id"])).status_code == 422
    assert [e.outcome for e in await audit_rows(session_factory, "pharmacy.add")][-1] == "success"
    assert [e.outcome for e in await audit_rows(session_factory, "pharmacy.update")][-1] == "success"


async def test_the_directory_loads_from_pharmacy_organizations_on_file(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    async with session_factory() as db:
        db.add_all([
            Organization(name="Beacon Hill Pharmacy", kind="Pharmacy", phone="617-555-0177",
                         address_line="1 Charles Street", city="Boston", state="MA", zip="02114",
                         identifiers=[{"system": "http://terminology.hl7.org/NamingSystem/NCPDPProviderIdentificationNumber",
                                       "value": "5556667"}]),
            Organization(name="Harborview Retail Pharmacy", kind="3336C0003X", city="Quincy"),
            Organization(name="Riverside Community Clinic", kind="Healthcare Provider"),
        ])
        await db.commit()
    admin = await signed_in(app, session_factory, "clinic.admin", role=Role.admin)
    assert (await c.dr.post("/api/v1/admin/pharmacies/load-from-records")).status_code == 403
    r = await admin.post("/api/v1/admin/pharmacies/load-from-records")
    assert r.status_code == 200 and r.json() == {"added": 2, "updated": 0}
    found = (await c.maria.get("/api/v1/pharmacies", params={"q": "beacon"})).json()
    assert [(p["name"], p["ncpdp_id"], p["from_records"]) for p in found] == [
        ("Beacon Hill Pharmacy", "5556667", True)]
    assert await names(c.maria, "quincy") == ["Harborview Retail Pharmacy"]
    assert await names(c.maria, "clinic") == []
    r = await admin.post("/api/v1/admin/pharmacies/load-from-records")
    assert r.json() == {"added": 0, "updated": 2}  # loading again updates in place
    assert len(await names(c.maria)) == 4


def test_organization_types_that_name_a_pharmacy() -> None:
    for kind in ("Pharmacy", "PHARM", "Community/Retail Pharmacy", "3336C0003X", "333600000X"):
        assert is_pharmacy_kind(kind), kind
    for kind in (None, "", "Healthcare Provider", "prov", "Payer"):
        assert not is_pharmacy_kind(kind), kind


async def test_a_patients_preferred_pharmacy_is_theirs_and_remembered(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    assert (await c.maria.get("/api/v1/pharmacies/preferred")).json() == {"pharmacy": None}
    r = await c.maria.put("/api/v1/pharmacies/preferred", json={"pharmacy_id": c.corner})
    assert r.status_code == 200 and r.json()["pharmacy"]["name"] == "Corner Drug Store"
    # Asking without remembering keeps the preferred one.
    await ask(c.maria, c.atorvastatin, c.harbor, remember_pharmacy=False)
    assert (await c.maria.get("/api/v1/refills")).json()["preferred_pharmacy"]["id"] == c.corner
    assert (await c.dr.get("/api/v1/pharmacies/preferred")).status_code == 403
    r = await c.maria.put("/api/v1/pharmacies/preferred", json={"pharmacy_id": 999_999})
    assert r.status_code == 422
    rows = await audit_rows(session_factory, "pharmacy.preferred.set")
    assert [(e.outcome, e.patient_id) for e in rows] == [("success", c.maria_id)]
