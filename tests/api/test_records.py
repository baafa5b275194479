"""The Medical Records tab through the API: a patient reads their record (the demo
clinic's, imported through the FHIR importer), downloads it as FHIR, and nobody
else reads it: other patients get 404, staff and admins 403, providers outside
the care team 403 until they give a cross-cover reason; every read and every
refusal is in the audit log.

The helpers here (a clinic imported from the demo bundle, signed-in clients of
each role) are shared by the labs and dashboard tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from rtc_server.audit import AuditEvent
from rtc_server.auth.models import Role, User
from rtc_server.auth.sessions import session_cookie_name
from rtc_server.db import create_engine, make_session_factory
from rtc_server.demo.clinic import build_demo_bundle
from rtc_server.demo.people import DEMO_PATIENTS, PRACTITIONERS, demo_id
from rtc_server.fhir.importer import import_bundle
from rtc_server.portal.labs.models import LabHoldRule
from rtc_server.portal.labs.release import triage_imported
from rtc_server.records.models import Condition, Observation, Patient, Practitioner
from tests.harness import create_signed_in_user, csrf_client, make_settings

BOTH_BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)




# --- a clinic imported from FHIR -------------------------------------------------------

@dataclass
class Clinic:
    patients: dict[str, int]  # demo key -> patient id
    practitioners: dict[str, int]  # demo key -> practitioner id


async def import_demo(session_factory: Any, *, hold: dict[str, str] | None = None,
                      settings: Any = None) -> Clinic:
    """The demo clinic imported through the FHIR importer, its lab results classified
    as the import path does (``hold``: LOINC code -> reason, set before the import)."""
    async with session_factory() as db:
        for code, reason in (hold or {}).items():
            db.add(LabHoldRule(code=code, display=code, reason=reason, set_at=datetime.now(UTC)))
        await import_bundle(db, build_demo_bundle(date.today()), source="test")
        if settings is not None:
            await triage_imported(db, settings, now=datetime.now(UTC))
        await db.commit()
        patients = {p.key: (await db.exec(select(Patient.id).where(Patient.fhir_id == p.fhir_id))).one()
                    for p in DEMO_PATIENTS}
        doctors = {d.key: (await db.exec(select(Practitioner.id).where(
            Practitioner.fhir_id == d.fhir_id))).one() for d in PRACTITIONERS}
    return Clinic(patients, doctors)


async def signed_in(app: Any, session_factory: Any, username: str, *,
                    practitioner_id: int | None = None, **fields: Any) -> httpx.AsyncClient:
    """A client with a full session of a new account (``create_user``'s keywords);
    a provider's account is linked to ``practitioner_id``."""
    settings = app.state.settings
    token = await create_signed_in_user(session_factory, settings, username, **fields)
    if practitioner_id is not None:
        async with session_factory() as db:
            user = (await db.exec(select(User).where(User.username == username))).one()
            user.practitioner_id = practitioner_id
            db.add(user)
            await db.commit()
    client = await csrf_client(app)
    client.cookies.set(session_cookie_name(settings), token)
    return client


async def patient_client(app: Any, session_factory: Any, clinic: Clinic, key: str = "alvarez",
                         **fields: Any) -> httpx.AsyncClient:
    return await signed_in(app, session_factory, f"{key}.patient", role=Role.patient,
                           patient_id=clinic.patients[key], display_name=key.title(), **fields)


async def provider_client(app: Any, session_factory: Any, clinic: Clinic,
                          key: str = "marsh") -> httpx.AsyncClient:
    return await signed_in(app, session_factory, f"dr.{key}", role=Role.provider,
                           practitioner_id=clinic.practitioners[key])


async def audit_rows(session_factory: Any, action: str | None = None) -> list[AuditEvent]:
    async with session_factory() as db:
        query = select(AuditEvent).order_by(col(AuditEvent.id))
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list((await db.exec(query)).all())


async def lab_ids(session_factory: Any, patient_id: int, code: str | None = None) -> list[int]:
    async with session_factory() as db:
        query = select(Observation.id).where(Observation.patient_id == patient_id,
                                             Observation.category == "laboratory")
        if code is not None:
            query = query.where(Observation.code == code)
        return list((await db.exec(query.order_by(col(Observation.effective_at)))).all())


# --- the patient's record ---------------------------------------------------------------

async def test_patient_reads_their_record_with_active_and_resolved_diagnoses(app, session_factory) -> None:
    clinic = await import_demo(session_factory)
    async with session_factory() as db:  # an old problem, resolved
        db.add(Condition(patient_id=clinic.patients["alvarez"], display="Acute bronchitis",
                         clinical_status="resolved", onset_at=datetime(2020, 1, 5, tzinfo=UTC),
                         abatement_at=datetime(2020, 2, 1, tzinfo=UTC)))
        await db.commit()
    client = await patient_client(app, session_factory, clinic)

    r = await client.get("/api/v1/records")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["patient"]["name"] == "María Álvarez"
    assert {c["display"] for c in body["conditions"]["active"]} == {
        "Type 2 diabetes mellitus", "Essential hypertension"}
    assert [c["display"] for c in body["conditions"]["resolved"]] == ["Acute bronchitis"]
    assert {m["display"] for m in body["medications"]["active"]} == {
        "Metformin hydrochloride 500 MG Oral Tablet", "Lisinopril 10 MG Oral Tablet"}
    metformin = next(m for m in body["medications"]["active"] if m["display"].startswith("Metformin"))
    assert metformin["dosage"] == "1 tablet by mouth twice daily with meals"
    [allergy] = body["allergies"]
    assert allergy["display"] == "Allergy to penicillin" and allergy["reactions"] == ["Hives"]
    assert allergy["criticality"] == "high"
    assert len(body["immunizations"]) == 2
    [plan] = body["care_plans"]
    assert plan["title"] == "Diabetes self management plan"
    assert [a["display"] for a in plan["activities"]] == [
        "Diabetic diet", "Exercise therapy", "Glucose monitoring at home"]
    assert len(body["visits"]) == 2  # the annual visit a year back and a recent one
    assert all(v["practitioner"] == "Dr. Elena Marsh, MD" for v in body["visits"])
    assert body["visits"][0]["start"] > body["visits"][1]["start"]  # latest first

    [row] = await audit_rows(session_factory, "records.read")
    assert row.patient_id == clinic.patients["alvarez"] and row.outcome == "success"


async def test_records_answer_only_patients_and_refusals_are_audited(app, session_factory) -> None:
    clinic = await import_demo(session_factory)
    anonymous = await csrf_client(app)
    assert (await anonymous.get("/api/v1/records")).status_code == 401
    for role in (Role.staff, Role.admin, Role.provider):
        client = await signed_in(app, session_factory, f"someone.{role}", role=role)
        for path in ("/api/v1/records", "/api/v1/records/export", "/api/v1/labs", "/api/v1/labs/1",
                     "/api/v1/dashboard"):
            r = await client.get(path)
            assert r.status_code == 403, (role, path, r.text)
    denied = [r for r in await audit_rows(session_factory) if r.outcome == "denied"]
    assert {(r.actor_role, r.action) for r in denied} == {
        (role, action) for role in ("staff", "admin", "provider")
        for action in ("records.read", "records.export", "lab.list", "lab.read", "dashboard.read")}
    reads = [r for r in await audit_rows(session_factory)
             if r.patient_id in clinic.patients.values() and r.actor_id is not None]
    assert [r for r in reads if r.outcome == "success"] == []  # nobody's record was read


async def test_export_downloads_the_whole_record_as_a_fhir_bundle_without_held_results(
    app, session_factory, tmp_path: Path, _migrated_sqlite: Path, smtp: Any,
) -> None:
    a1c = "4548-4"
    clinic = await import_demo(session_factory, hold={a1c: "Your clinician explains this result."},
                               settings=app.state.settings)
    client = await patient_client(app, session_factory, clinic)

    r = await client.get("/api/v1/records/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert r.headers["content-disposition"].startswith('attachment; filename="health-record-')
    assert r.headers["content-disposition"].endswith('.json"')
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    [patient] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert patient["id"] == demo_id("Patient", "alvarez")
    assert {"Condition", "MedicationRequest", "AllergyIntolerance", "Immunization", "CarePlan",
            "Encounter", "Observation"} <= set(kinds)
    codes = [e["resource"]["code"]["coding"][0]["code"] for e in bundle["entry"]
             if e["resource"]["resourceType"] == "Observation"]
    assert a1c not in codes  # held for review: not in the download either
    assert codes.count("2345-7") == 2  # released glucose results, both of them
    reports = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    urls = {e["fullUrl"] for e in bundle["entry"]}
    for report in reports:  # every reference in the bundle resolves inside it
        assert all(ref["reference"] in urls for ref in report.get("result", []))
    [row] = await audit_rows(session_factory, "records.export")
    assert row.resource == f"Bundle/{bundle['id']}" and row.patient_id == clinic.patients["alvarez"]

    # Re-imported into a fresh database, the download gives the same record (bar the held result).
    copy = tmp_path / "fresh.db"
    copy.write_bytes(_migrated_sqlite.read_bytes())
    fresh = create_engine(make_settings(tmp_path / "fresh", f"sqlite+aiosqlite:///{copy}", smtp))
    try:
        async with make_session_factory(fresh)() as db:
            await import_bundle(db, bundle, source="export")
            await db.commit()
            count = len((await db.exec(select(Observation.id))).all())
            conditions = len((await db.exec(select(Condition.id))).all())
    finally:
        await fresh.dispose()
    async with session_factory() as db:
        on_file = (await db.exec(select(Observation.id).where(
            Observation.patient_id == clinic.patients["alvarez"]))).all()
    assert count == len(on_file) - 2  # both A1c results are held
    assert conditions == 2


# --- the console's chart --------------------------------------------------------------------

async def test_provider_reads_own_patients_chart_and_needs_a_reason_for_others(app, session_factory) -> None:
    clinic = await import_demo(session_factory, hold={"4548-4": "Reviewed first."},
                               settings=app.state.settings)
    marsh = await provider_client(app, session_factory, clinic, "marsh")
    okafor = await provider_client(app, session_factory, clinic, "okafor")
    alvarez = clinic.patients["alvarez"]

    r = await marsh.get(f"/api/v1/console/patients/{alvarez}/chart")
    assert r.status_code == 200, r.text
    chart = r.json()
    assert chart["access"] == "care_team"
    assert chart["record"]["patient"]["name"] == "María Álvarez"
    a1c = next(t for t in chart["labs"] if t["code"] == "4548-4")
    assert a1c["latest"]["id"] in chart["held_ids"]  # clinicians see held results, marked

    r = await okafor.get(f"/api/v1/console/patients/{alvarez}/chart")
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_cover_required"
    r = await okafor.post(f"/api/v1/console/patients/{alvarez}/cross-cover", json={"reason": "short"})
    assert r.status_code == 422
    r = await okafor.post(f"/api/v1/console/patients/{alvarez}/cross-cover",
                          json={"reason": "Covering for Dr. Marsh this weekend"})
    assert r.status_code == 201, r.text
    expires = datetime.fromisoformat(r.json()["expires_at"])
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)
    r = await okafor.get(f"/api/v1/console/patients/{alvarez}/chart")
    assert r.status_code == 200 and r.json()["access"] == "cross_cover"

    reads = await audit_rows(session_factory, "chart.read")
    assert [(r.outcome, r.patient_id) for r in reads] == [
        ("success", alvarez), ("denied", alvarez), ("success", alvarez)]
    assert ";cross_cover:" in (reads[-1].resource or "")
    [grant] = await audit_rows(session_factory, "chart.cross_cover")
    assert grant.patient_id == alvarez and grant.outcome == "success"
    assert "Covering" not in (grant.resource or "")  # the reason stays out of the audit log


async def test_staff_admins_and_patients_are_refused_charts(app, session_factory) -> None:
    clinic = await import_demo(session_factory)
    alvarez = clinic.patients["alvarez"]
    front_desk = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    admin = await signed_in(app, session_factory, "site.admin", role=Role.admin)
    patient = await patient_client(app, session_factory, clinic, "oconnor")
    for client in (front_desk, admin):
        assert (await client.get(f"/api/v1/console/patients/{alvarez}/chart")).status_code == 403
        r = await client.post(f"/api/v1/console/patients/{alvarez}/cross-cover",
                              json={"reason": "I would like to look, please"})
        assert r.status_code == 403
    for someone in (alvarez, clinic.patients["oconnor"]):  # another's or their own: not a console user
        assert (await patient.get(f"/api/v1/console/patients/{someone}/chart")).status_code == 403
    provider = await provider_client(app, session_factory, clinic)
    assert (await provider.get("/api/v1/console/patients/999999/chart")).status_code == 404
    denied = [r for r in await audit_rows(session_factory) if r.outcome == "denied"]
    assert len(denied) == 7
    assert {r.action for r in denied} == {"chart.read", "chart.cross_cover"}
