"""The lab list and the dashboard read on SQLite through the instance's read pool
(``rtc_server.readpool``), past the ORM: the answers must be exactly those the
ORM path gives, held tests and new results included, and each still audited."""

from __future__ import annotations

from sqlmodel import select

from rtc_server.audit import AuditEvent
from rtc_server.auth.models import User
from rtc_server.portal.labs import service
from rtc_server.portal.labs.shapes import LabsOut
from rtc_server.readpool import READ_POOL_INFO
from tests.api.test_records import import_demo, patient_client

HOLD = {"2160-0": "Your clinician reviews kidney results with you first."}


async def test_the_lab_list_is_the_same_through_the_read_pool(app, session_factory) -> None:
    pool = session_factory.kw["info"][READ_POOL_INFO]  # SQLite: the instance has one
    clinic = await import_demo(session_factory, hold=HOLD, settings=app.state.settings)
    client = await patient_client(app, session_factory, clinic, "kowalski")
    before = pool.executed
    r = await client.get("/api/v1/labs")
    assert r.status_code == 200
    assert pool.executed - before == 3  # unclassified results? the results, the hold list
    body = r.json()
    assert body["held_tests"] == [{"code": "2160-0", "display": "2160-0", "reason": HOLD["2160-0"]}]
    assert all(t["code"] != "2160-0" for t in body["tests"])  # held results never appear
    async with session_factory() as db:
        user = (await db.exec(select(User).where(User.username == "kowalski.patient"))).one()
        rows = (await db.exec(service.labs_of(), params={"patient_id": user.patient_id})).all()
        results = [service.result_out(row) for row in rows]
        expected = LabsOut(tests=service.group_tests(results), new_count=sum(x.new for x in results),
                           held_tests=await service.held_tests(db))
        audited = (await db.exec(select(AuditEvent).where(AuditEvent.action == "lab.list"))).all()
    assert r.content == expected.model_dump_json().encode()
    assert [(a.actor_id, a.patient_id, a.outcome) for a in audited] == [
        (user.id, user.patient_id, "success")]
