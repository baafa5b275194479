"""The Dashboard through the API: one request gathers the next appointments, new
lab results, unread conversations with the care team, open refill requests and
what needs the patient's attention; it is built by a fixed handful of statements,
however long the record."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event
from sqlmodel import select

from rtc_server.chat.models import Category, Conversation
from rtc_server.pharmacy.models import Pharmacy
from rtc_server.portal.refills.models import RefillRequest
from rtc_server.readpool import READ_POOL_INFO
from rtc_server.records.models import Appointment, Medication
from tests.api.test_records import (
    BOTH_BACKENDS,
    audit_rows,
    import_demo,
    lab_ids,
    patient_client,
)


@BOTH_BACKENDS
async def test_dashboard_gathers_what_the_patient_should_see_first(app, session_factory) -> None:
    clinic = await import_demo(session_factory, settings=app.state.settings)
    kowalski = clinic.patients["kowalski"]  # two upcoming visits, with two providers
    now = datetime.now(UTC)
    async with session_factory() as db:
        db.add(Conversation(patient_id=kowalski, category=Category.question, subject="Inhaler question",
                            created_at=now, last_seq=2, last_message_at=now))
        pharmacy = Pharmacy(name="Corner Pharmacy", name_norm="corner pharmacy", created_at=now,
                            updated_at=now)
        db.add(pharmacy)
        apixaban, tiotropium = (await db.exec(select(Medication).where(Medication.patient_id == kowalski)
                                              .order_by(Medication.id))).all()
        await db.flush()
        for med, status in ((apixaban, "requested"), (tiotropium, "sent")):  # one open, one done
            db.add(RefillRequest(patient_id=kowalski, medication_id=med.id, pharmacy_id=pharmacy.id,
                                 medication_name=med.display, status=status, requested_at=now))
        await db.commit()
    client = await patient_client(app, session_factory, clinic, "kowalski")

    r = await client.get("/api/v1/dashboard")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["upcoming_count"] == 2
    first, second = body["appointments"]
    assert first["start"] < second["start"]
    assert (first["practitioner"], first["kind"]) == ("Dr. Elena Marsh, MD", "in_person")
    assert second["kind"] == "video"
    new = {r["display"] for r in body["new_results"]}
    assert new == {"Creatinine [Mass/volume] in Serum or Plasma",
                   "Potassium [Moles/volume] in Serum or Plasma", "Hemoglobin [Mass/volume] in Blood"}
    assert {r["flag"] for r in body["new_results"]} == {"H", None}  # creatinine 1.5 and potassium 5.4
    assert "value" not in body["new_results"][0]  # values are on the result's own page
    assert body["messages"]["available"] is True
    assert body["messages"]["unread"] == 2
    assert [c["subject"] for c in body["messages"]["items"]] == ["Inhaler question"]
    assert body["refills"]["available"] is True
    assert [(r["medication"], r["status"]) for r in body["refills"]["items"]] == [
        ("Apixaban 5 MG Oral Tablet", "requested")]
    kinds = [a["kind"] for a in body["actions"]]
    assert kinds[:2] == ["unread_messages", "new_results"]
    assert body["actions"][1]["text"] == "You have 3 new test results to read."
    [row] = await audit_rows(session_factory, "dashboard.read")
    assert row.patient_id == kowalski and row.outcome == "success"


async def test_cancelled_and_past_appointments_and_opened_results_drop_off(app, session_factory) -> None:
    clinic = await import_demo(session_factory, settings=app.state.settings)
    kowalski = clinic.patients["kowalski"]
    async with session_factory() as db:
        appts = (await db.exec(select(Appointment).where(Appointment.patient_id == kowalski,
                                                         Appointment.status == "booked"))).all()
        upcoming = sorted((a for a in appts if a.start > datetime.now(UTC)), key=lambda a: a.start)
        upcoming[0].status = "cancelled"
        db.add(upcoming[0])
        await db.commit()
    client = await patient_client(app, session_factory, clinic, "kowalski")
    for lab in (await lab_ids(session_factory, kowalski))[-3:]:
        assert (await client.get(f"/api/v1/labs/{lab}")).status_code == 200
    body = (await client.get("/api/v1/dashboard")).json()
    assert [a["id"] for a in body["appointments"]] == [upcoming[1].id]
    assert body["new_results"] == []
    assert "new_results" not in [a["kind"] for a in body["actions"]]


async def test_the_dashboard_takes_the_same_few_statements_however_long_the_record(
    app, session_factory,
) -> None:
    clinic = await import_demo(session_factory, settings=app.state.settings)
    client = await patient_client(app, session_factory, clinic, "kowalski")
    await client.get("/api/v1/dashboard")  # first read: the session is touched
    statements: list[str] = []
    engine = app.state.engine.sync_engine

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    pool = app.state.session_factory.kw["info"].get(READ_POOL_INFO)  # SQLite: the page's reads go there
    pool_reads = pool.executed if pool is not None else 0
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert (await client.get("/api/v1/dashboard")).status_code == 200
        assert (await client.get("/api/v1/dashboard")).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    if pool is not None:
        statements += ["(read pool)"] * (pool.executed - pool_reads)
    # Per request: one read for the whole page (appointments, results, conversations,
    # refills) and the audit row; the session is read from the database once, then
    # the instance's session cache answers.
    assert len(statements) == 5, statements


@BOTH_BACKENDS
async def test_a_video_visits_chat_is_not_a_message_on_the_dashboard(app, session_factory) -> None:
    # From the visits review: the in-call chat (visit_id set) showed as an unread
    # message that never cleared and could not be opened.
    from rtc_server.rooms.models import Visit

    clinic = await import_demo(session_factory, settings=app.state.settings)
    kowalski = clinic.patients["kowalski"]
    now = datetime.now(UTC)
    async with session_factory() as db:
        visit = Visit(patient_id=kowalski, practitioner_id=next(iter(clinic.practitioners.values())),
                      created_at=now)
        db.add(visit)
        await db.flush()
        db.add(Conversation(patient_id=kowalski, category=Category.question, subject="Video visit",
                            created_at=now, last_seq=3, last_message_at=now, visit_id=visit.id))
        db.add(Conversation(patient_id=kowalski, category=Category.question, subject="Inhaler question",
                            created_at=now, last_seq=1, last_message_at=now))
        await db.commit()
    client = await patient_client(app, session_factory, clinic, "kowalski")
    body = (await client.get("/api/v1/dashboard")).json()
    assert [c["subject"] for c in body["messages"]["items"]] == ["Inhaler question"]
    assert body["messages"]["unread"] == 1
