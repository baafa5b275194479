"""The demo clinic has something to book: its imported slots for the next two
weeks, published hours after them, and its patients' own appointments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlmodel import select

from rtc_server.demo.clinic import DEMO_PATIENTS, build_demo_bundle
from rtc_server.fhir.importer import import_bundle
from rtc_server.portal.appointments.demo import publish_demo_hours
from rtc_server.records.models import Patient
from tests.api.test_appointments import at, book, signed_in


async def test_a_demo_patient_finds_open_times_and_their_appointments(app, session_factory) -> None:
    async with session_factory() as db:
        await import_bundle(db, build_demo_bundle(date.today()), source="demo clinic")
        await db.commit()
    async with session_factory() as db:
        assert await publish_demo_hours(db, app.state.settings) == 3
        await db.commit()
    async with session_factory() as db:
        assert await publish_demo_hours(db, app.state.settings) == 0  # once is enough
        demo = next(p for p in DEMO_PATIENTS if p.future)
        row = (await db.exec(select(Patient).where(Patient.fhir_id == demo.fhir_id))).one()
    client = await signed_in(app, session_factory, "demo.patient", patient_id=row.id)

    mine = (await client.get("/api/v1/appointments")).json()
    assert len(mine["upcoming"]) == len(demo.future) and mine["past"]
    providers = (await client.get("/api/v1/appointments/providers")).json()
    assert len(providers) == 3 and providers[0]["primary"] is True
    assert all(p["kinds"] == ["in_person", "video"] for p in providers)

    doctor = providers[0]["id"]
    now = datetime.now(UTC)
    r = await client.get("/api/v1/appointments/open-times",
                         params={"practitioner_id": doctor, "start": now.isoformat(), "days": 31})
    times = {at(t["start"]): t["kinds"] for t in r.json()["times"]}
    starts = list(times)
    assert len(starts) == len(r.json()["times"])  # an imported slot and a published hour never both
    assert any(s > now + timedelta(days=16) for s in starts)  # beyond the imported two weeks
    imported = [s for s in starts if now + timedelta(days=1) < s < now + timedelta(days=13)]
    assert imported and all(times[s] == ["in_person", "video"] for s in imported)
    r = await book(client, doctor, imported[0])
    assert r.status_code == 201, r.text
    later = [s for s in starts if s > now + timedelta(days=16)]
    assert (await book(client, doctor, later[0], kind=times[later[0]][-1])).status_code == 201
