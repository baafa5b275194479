"""Lab results and release rules through the API: patients see released results
with value, unit, reference range, a flag and the test's history; results of a
held test stay invisible everywhere until a clinician releases them (with a note),
which notifies the patient without health data; the hold list is clinic policy
set by providers and admins; staff, admins and providers outside the care team
are refused (audited)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from rtc_server.auth.models import Role, User
from rtc_server.portal.labs.release import triage_imported
from tests.api.test_records import (
    BOTH_BACKENDS,
    audit_rows,
    import_demo,
    lab_ids,
    patient_client,
    provider_client,
    signed_in,
)

A1C = "4548-4"
GLUCOSE = "2345-7"
HOLD = {A1C: "Your clinician reviews this result with you first."}
#: Words that would be health data in a notification.
HEALTH_WORDS = ("A1c", "Hemoglobin", "Glucose", "7.6", "mg/dL", "%", "high", "Creatinine")


def by_code(body: dict[str, Any], code: str) -> dict[str, Any] | None:
    return next((t for t in body["tests"] if t["code"] == code), None)


async def test_patient_sees_value_unit_range_flag_and_history(app, session_factory) -> None:
    clinic = await import_demo(session_factory, settings=app.state.settings)
    client = await patient_client(app, session_factory, clinic)

    r = await client.get("/api/v1/labs")
    assert r.status_code == 200, r.text
    body = r.json()
    assert "two to four days" in body["turnaround"]
    assert body["held_tests"] == []
    a1c = by_code(body, A1C)
    assert a1c is not None
    latest = a1c["latest"]
    assert (latest["value"], latest["unit"]) == (7.6, "%")
    assert (latest["reference_low"], latest["reference_high"]) == (4.0, 5.6)
    assert latest["reference_range"] == "4 to 5.6 %"
    assert (latest["flag"], latest["flag_label"]) == ("H", "High")
    assert [p["value"] for p in a1c["history"]] == [8.4, 7.6]  # oldest first, for the chart
    creatinine = by_code(body, "2160-0")
    assert creatinine is not None and creatinine["latest"]["flag"] is None  # in range
    # The recent results are news; last year's are history.
    assert latest["new"] is True
    assert body["new_count"] == 4
    [row] = await audit_rows(session_factory, "lab.list")
    assert row.patient_id == clinic.patients["alvarez"]


@BOTH_BACKENDS
async def test_held_result_is_invisible_until_a_clinician_releases_it_with_a_note(
    app, session_factory, smtp, drain_mail,
) -> None:
    clinic = await import_demo(session_factory, hold=HOLD, settings=app.state.settings)
    alvarez = clinic.patients["alvarez"]
    old, recent = await lab_ids(session_factory, alvarez, A1C)
    patient = await patient_client(app, session_factory, clinic)
    marsh = await provider_client(app, session_factory, clinic, "marsh")

    # Held: not in the list, not by id, not on the dashboard, not in the download.
    body = (await patient.get("/api/v1/labs")).json()
    assert by_code(body, A1C) is None
    assert body["held_tests"] == [{"code": A1C, "display": A1C, "reason": HOLD[A1C]}]
    assert (await patient.get(f"/api/v1/labs/{recent}")).status_code == 404
    dashboard = (await patient.get("/api/v1/dashboard")).json()
    assert recent not in [r["id"] for r in dashboard["new_results"]]
    assert f'"{A1C}"' not in (await patient.get("/api/v1/records/export")).text
    [refused] = [r for r in await audit_rows(session_factory, "lab.read") if r.outcome == "denied"]
    assert refused.resource == f"observation:{recent}"

    # The care team's queue has both, oldest first.
    r = await marsh.get("/api/v1/console/results")
    assert r.status_code == 200, r.text
    queue = r.json()
    assert [(i["id"], i["access"]) for i in queue] == [(old, "care_team"), (recent, "care_team")]
    assert queue[1]["patient"]["name"] == "María Álvarez" and queue[1]["flag"] == "H"

    mailed = len(smtp.to("alvarez.patient@example.org"))
    r = await marsh.post(f"/api/v1/console/results/{recent}/release",
                         json={"note": "Better than last year. Let's keep going."})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "released"
    assert (await marsh.post(f"/api/v1/console/results/{recent}/release")).status_code == 409

    a1c = by_code((await patient.get("/api/v1/labs")).json(), A1C)
    assert a1c is not None
    assert a1c["latest"]["id"] == recent and a1c["latest"]["new"] is True
    assert a1c["latest"]["note"] == "Better than last year. Let's keep going."
    assert [p["id"] for p in a1c["history"]] == [recent]  # last year's is still held
    dashboard = (await patient.get("/api/v1/dashboard")).json()
    assert dashboard["new_results"][0]["id"] == recent
    assert [i["id"] for i in (await marsh.get("/api/v1/console/results")).json()] == [old]

    # The patient is told by email, without any health data.
    await drain_mail()
    mails = smtp.to("alvarez.patient@example.org")
    assert len(mails) == mailed + 1
    text = smtp.text(mails[-1])
    assert "You have a new result in the portal" in text
    assert "/app/records.html" in text
    assert not [w for w in HEALTH_WORDS if w in text or w in str(mails[-1]["Subject"])]
    [release] = await audit_rows(session_factory, "lab.release")
    assert release.patient_id == alvarez and release.outcome == "success"


async def test_opening_a_result_stops_it_showing_as_new(app, session_factory) -> None:
    clinic = await import_demo(session_factory, settings=app.state.settings)
    client = await patient_client(app, session_factory, clinic)
    _, recent = await lab_ids(session_factory, clinic.patients["alvarez"], GLUCOSE)
    dashboard = (await client.get("/api/v1/dashboard")).json()
    assert recent in [r["id"] for r in dashboard["new_results"]]

    r = await client.get(f"/api/v1/labs/{recent}")
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["result"]["value"] == 138 and detail["result"]["flag"] == "H"
    assert [p["value"] for p in detail["history"]] == [156, 138]

    dashboard = (await client.get("/api/v1/dashboard")).json()
    assert recent not in [r["id"] for r in dashboard["new_results"]]
    assert by_code((await client.get("/api/v1/labs")).json(), GLUCOSE)["latest"]["new"] is False  # type: ignore[index]
    [read] = await audit_rows(session_factory, "lab.read")
    assert read.resource == f"observation:{recent}" and read.outcome == "success"


async def test_another_patients_result_answers_404_like_a_missing_one(app, session_factory) -> None:
    clinic = await import_demo(session_factory, settings=app.state.settings)
    theirs = (await lab_ids(session_factory, clinic.patients["alvarez"]))[0]
    other = await patient_client(app, session_factory, clinic, "oconnor")
    missing = await other.get("/api/v1/labs/987654")
    someone_elses = await other.get(f"/api/v1/labs/{theirs}")
    assert missing.status_code == someone_elses.status_code == 404
    assert missing.json()["error"]["code"] == someone_elses.json()["error"]["code"]
    denied = await audit_rows(session_factory, "lab.read")
    assert [(r.outcome, r.resource) for r in denied] == [
        ("denied", "observation:987654"), ("denied", f"observation:{theirs}")]
    assert all(r.patient_id == clinic.patients["oconnor"] for r in denied)


async def test_hold_list_is_set_by_providers_and_admins_only(app, session_factory) -> None:
    clinic = await import_demo(session_factory)
    marsh = await provider_client(app, session_factory, clinic)
    admin = await signed_in(app, session_factory, "site.admin", role=Role.admin)
    front_desk = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    patient = await patient_client(app, session_factory, clinic)

    hold = {"code": A1C, "display": "Hemoglobin A1c", "reason": "Reviewed with you at your visit."}
    r = await marsh.put("/api/v1/console/result-holds", json=hold)
    assert r.status_code == 200, r.text
    r = await admin.put("/api/v1/console/result-holds",
                        json={**hold, "code": "2093-3", "display": "Cholesterol"})
    assert r.status_code == 200
    for client in (front_desk, patient):
        assert (await client.put("/api/v1/console/result-holds", json=hold)).status_code == 403
        assert (await client.get("/api/v1/console/result-holds")).status_code == 403
    bad = await marsh.put("/api/v1/console/result-holds", json={**hold, "code": "A1C"})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "code"

    listed = (await admin.get("/api/v1/console/result-holds")).json()
    assert listed["default"] == "release"
    assert [h["code"] for h in listed["holds"]] == ["2093-3", A1C]
    held = (await patient.get("/api/v1/labs")).json()["held_tests"]
    assert {h["display"] for h in held} == {"Hemoglobin A1c", "Cholesterol"}

    assert (await marsh.delete(f"/api/v1/console/result-holds/{A1C}")).status_code == 204
    assert (await marsh.delete(f"/api/v1/console/result-holds/{A1C}")).status_code == 404
    left = (await marsh.get("/api/v1/console/result-holds")).json()["holds"]
    assert [h["code"] for h in left] == ["2093-3"]
    sets = await audit_rows(session_factory, "lab.hold_rule.set")
    assert [(r.actor_role, r.outcome) for r in sets] == [
        ("provider", "success"), ("admin", "success"), ("staff", "denied"), ("patient", "denied")]
    removes = await audit_rows(session_factory, "lab.hold_rule.remove")
    assert [r.outcome for r in removes] == ["success", "denied"]


async def test_front_desk_admins_and_patients_are_refused_lab_review(app, session_factory) -> None:
    clinic = await import_demo(session_factory, hold=HOLD, settings=app.state.settings)
    alvarez = clinic.patients["alvarez"]
    _, recent = await lab_ids(session_factory, alvarez, A1C)
    result = {"code": GLUCOSE, "display": "Glucose", "value": 101, "unit": "mg/dL"}
    for role in (Role.staff, Role.admin, Role.patient):
        client = await signed_in(app, session_factory, f"not.a.clinician.{role}", role=role,
                                 patient_id=alvarez if role == Role.patient else None)
        assert (await client.get("/api/v1/console/results")).status_code == 403
        assert (await client.post(f"/api/v1/console/results/{recent}/release")).status_code == 403
        r = await client.post(f"/api/v1/console/patients/{alvarez}/results", json=result)
        assert r.status_code == 403
    denied = [r for r in await audit_rows(session_factory) if r.outcome == "denied"]
    assert sorted((r.actor_role, r.action) for r in denied) == sorted(
        (role, action) for role in ("staff", "admin", "patient")
        for action in ("lab.review_queue", "lab.release", "lab.enter"))
    assert len(await lab_ids(session_factory, alvarez, GLUCOSE)) == 2  # nothing entered


async def test_a_provider_outside_the_care_team_releases_only_after_a_cross_cover_reason(
    app, session_factory,
) -> None:
    clinic = await import_demo(session_factory, hold=HOLD, settings=app.state.settings)
    alvarez = clinic.patients["alvarez"]
    _, recent = await lab_ids(session_factory, alvarez, A1C)
    okafor = await provider_client(app, session_factory, clinic, "okafor")

    assert alvarez not in [i["patient"]["id"] for i in (await okafor.get("/api/v1/console/results")).json()]
    r = await okafor.post(f"/api/v1/console/results/{recent}/release")
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_cover_required"
    r = await okafor.post(f"/api/v1/console/patients/{alvarez}/results",
                          json={"code": GLUCOSE, "display": "Glucose", "value": 101, "unit": "mg/dL"})
    assert r.status_code == 403

    r = await okafor.post(f"/api/v1/console/patients/{alvarez}/cross-cover",
                          json={"reason": "On call for Dr. Marsh tonight"})
    assert r.status_code == 201
    queue = (await okafor.get("/api/v1/console/results")).json()
    assert {(i["patient"]["id"], i["access"]) for i in queue} >= {(alvarez, "cross_cover")}
    assert (await okafor.post(f"/api/v1/console/results/{recent}/release")).status_code == 200
    [release] = [r for r in await audit_rows(session_factory, "lab.release") if r.outcome == "success"]
    assert ";cross_cover:" in (release.resource or "")


async def test_clinician_enters_results_released_at_once_or_held_by_the_rule(
    app, session_factory, smtp, drain_mail,
) -> None:
    clinic = await import_demo(session_factory, hold=HOLD)
    alvarez = clinic.patients["alvarez"]
    marsh = await provider_client(app, session_factory, clinic)
    patient = await patient_client(app, session_factory, clinic)
    await patient.get("/api/v1/labs")  # the imported ones are classified on this first read

    r = await marsh.post(f"/api/v1/console/patients/{alvarez}/results", json={
        "code": GLUCOSE, "display": "Glucose [Mass/volume] in Serum or Plasma", "value": 64,
        "unit": "mg/dL", "reference_low": 70, "reference_high": 99})
    assert r.status_code == 201, r.text
    glucose = r.json()
    assert glucose["state"] == "released"
    r = await marsh.post(f"/api/v1/console/patients/{alvarez}/results", json={
        "code": A1C, "display": "Hemoglobin A1c", "value": 7.1, "unit": "%", "reference_low": 4.0,
        "reference_high": 5.6})
    held = r.json()
    assert r.status_code == 201 and held["state"] == "held"

    body = (await patient.get("/api/v1/labs")).json()
    latest = by_code(body, GLUCOSE)["latest"]  # type: ignore[index]
    assert (latest["id"], latest["value"], latest["flag"], latest["new"]) == (glucose["id"], 64, "L", True)
    assert by_code(body, A1C) is None
    assert held["id"] in [i["id"] for i in (await marsh.get("/api/v1/console/results")).json()]
    await drain_mail()
    assert len(smtp.to("alvarez.patient@example.org")) == 1  # the released one only

    for bad in ({"code": GLUCOSE, "display": "Glucose"},  # no value
                {"code": "glucose", "display": "Glucose", "value": 5},
                {"code": GLUCOSE, "display": "Glucose", "value": 5, "reference_low": 9, "reference_high": 1}):
        assert (await marsh.post(f"/api/v1/console/patients/{alvarez}/results", json=bad)).status_code == 422
    entered = await audit_rows(session_factory, "lab.enter")
    assert [(r.outcome, r.patient_id) for r in entered] == [("success", alvarez)] * 2


async def test_a_patient_who_chose_text_messages_gets_a_text_without_health_data(
    app, session_factory, smtp, drain_mail,
) -> None:
    clinic = await import_demo(session_factory, hold=HOLD, settings=app.state.settings)
    alvarez = clinic.patients["alvarez"]
    _, recent = await lab_ids(session_factory, alvarez, A1C)
    await patient_client(app, session_factory, clinic)
    async with session_factory() as db:
        user = (await db.exec(select(User).where(User.patient_id == alvarez))).one()
        user.notification_prefs = {"lab_results": {"email": False, "sms": True}}
        db.add(user)
        await db.commit()
    marsh = await provider_client(app, session_factory, clinic)
    assert (await marsh.post(f"/api/v1/console/results/{recent}/release")).status_code == 200

    texts = sorted((app.state.settings.outbox_dir / "sms").glob("*.json"))
    [text] = [json.loads(p.read_text()) for p in texts]
    assert text["to"] == "617-555-0142"
    assert "You have a new result in the portal" in text["text"]
    assert not [w for w in HEALTH_WORDS if w in text["text"]]
    await drain_mail()
    assert smtp.to("alvarez.patient@example.org") == []


async def test_an_import_notifies_each_patient_once_of_new_results(
    app, session_factory, smtp, drain_mail,
) -> None:
    clinic = await import_demo(session_factory, hold=HOLD)  # imported, not yet classified
    await patient_client(app, session_factory, clinic)  # María has an account; the others do not
    async with session_factory() as db:
        done = await triage_imported(db, app.state.settings, now=datetime.now(UTC))
        await db.commit()
    assert {c.state for c in done if c.patient_id == clinic.patients["alvarez"]} == {"held", "released"}
    await drain_mail()
    [mail] = smtp.to("alvarez.patient@example.org")
    assert "You have a new result in the portal" in smtp.text(mail)
    async with session_factory() as db:  # a second run finds nothing new
        assert await triage_imported(db, app.state.settings, now=datetime.now(UTC)) == []
