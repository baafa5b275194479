"""The project's own demo clinic bundle: imports cleanly and has what the
portal needs to show (open slots, a video visit, labs with ranges...)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir_helpers import count_rows
from sqlmodel import select

from rtc_server.db import as_utc
from rtc_server.demo import CLINIC_TIMEZONE, DEMO_PATIENTS, build_demo_bundle
from rtc_server.fhir import import_bundle
from rtc_server.records.models import (
    AllergyIntolerance,
    Appointment,
    CarePlan,
    Condition,
    Encounter,
    Immunization,
    Medication,
    Observation,
    Patient,
    Practitioner,
    Schedule,
    Slot,
)

TODAY = date(2026, 11, 25)  # a Wednesday


def test_the_demo_bundle_is_deterministic_for_a_day() -> None:
    assert build_demo_bundle(TODAY) == build_demo_bundle(TODAY)
    assert build_demo_bundle(TODAY) != build_demo_bundle(TODAY + timedelta(days=1))


def test_demo_patients_cover_the_registration_cases() -> None:
    assert len(DEMO_PATIENTS) == 5
    with_email = [p for p in DEMO_PATIENTS if p.email]
    assert len(with_email) >= 3
    assert all(p.email.endswith(("@example.org", "@example.com")) for p in with_email)
    assert any(p.email is None for p in DEMO_PATIENTS)
    assert any(p.zip is None for p in DEMO_PATIENTS)
    assert len({p.fhir_id for p in DEMO_PATIENTS}) == 5


async def test_the_demo_clinic_imports_with_open_slots_and_a_future_video_visit(
    session_factory: Any,
) -> None:
    async with session_factory() as session:
        summary = await import_bundle(session, build_demo_bundle(TODAY), source="demo")
        await session.commit()
    assert not summary.skipped
    assert summary.created["Organization"] == 1
    assert summary.created["Practitioner"] == 3
    assert summary.created["Patient"] == 5

    now = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC)
    zone = ZoneInfo(CLINIC_TIMEZONE)
    async with session_factory() as session:
        schedules = (await session.exec(select(Schedule))).all()
        assert {s.time_zone for s in schedules} == {CLINIC_TIMEZONE}
        for doctor in (await session.exec(select(Practitioner))).all():
            slots = (await session.exec(select(Slot).where(
                Slot.practitioner_id == doctor.id, Slot.status == "free"))).all()
            assert slots, doctor.display_name
            for slot in slots:
                local = as_utc(slot.start).astimezone(zone)
                assert as_utc(slot.start) > now
                assert as_utc(slot.start) < now + timedelta(days=15)
                assert local.weekday() < 5 and 9 <= local.hour < 17

        booked = (await session.exec(select(Appointment).where(
            Appointment.status == "booked"))).all()
        videos = [a for a in booked if a.kind == "video"]
        assert videos and all(as_utc(a.start) > now for a in booked)
        for visit in booked:
            slot = await session.get(Slot, visit.slot_id)
            assert slot is not None and slot.status == "busy"
            assert (slot.practitioner_id, as_utc(slot.start)) == (
                visit.practitioner_id, as_utc(visit.start))
        fulfilled = (await session.exec(select(Appointment).where(
            Appointment.status == "fulfilled"))).all()
        assert fulfilled and all(as_utc(a.start) < now for a in fulfilled)


def _owned_by(patient_id: int | None) -> Any:
    def query(table: Any) -> Any:
        return select(table).where(table.patient_id == patient_id)
    return query


async def test_every_demo_patient_has_a_full_record(session_factory: Any) -> None:
    async with session_factory() as session:
        await import_bundle(session, build_demo_bundle(TODAY))
        await session.commit()
    async with session_factory() as session:
        for demo in DEMO_PATIENTS:
            patient = (await session.exec(select(Patient).where(
                Patient.fhir_id == demo.fhir_id))).one()
            assert (patient.given_name, patient.family_name) == (demo.given, demo.family)
            assert (patient.birth_date, patient.zip, patient.email) == (
                demo.birth_date, demo.zip, demo.email)
            assert patient.mrn and patient.primary_practitioner_id
            mine = _owned_by(patient.id)
            for table in (Condition, Medication, CarePlan, Immunization, AllergyIntolerance,
                          Encounter):
                assert (await session.exec(mine(table))).all(), (demo.key, table.__name__)
            labs = (await session.exec(mine(Observation).where(
                Observation.category == "laboratory"))).all()
            assert labs and all(o.reference_text and o.interpretation_code for o in labs)
            assert all(o.value_quantity is not None and o.value_unit for o in labs)
            vitals = (await session.exec(mine(Observation).where(
                Observation.category == "vital-signs"))).all()
            assert any(o.components for o in vitals)  # blood pressure

        alvarez = (await session.exec(select(Patient).where(Patient.family_norm == "alvarez"))).one()
        a1c = (await session.exec(select(Observation).where(
            Observation.patient_id == alvarez.id, Observation.code == "4548-4"))).all()
        assert {(o.value_quantity, o.interpretation_code) for o in a1c} == {(8.4, "H"), (7.6, "H")}
        assert {(o.reference_low, o.reference_high) for o in a1c} == {(4.0, 5.6)}
        low = (await session.exec(select(Observation).where(
            Observation.interpretation_code == "L"))).all()
        assert low


async def test_importing_the_next_days_demo_updates_shared_slots_in_place(
    session_factory: Any,
) -> None:
    async with session_factory() as session:
        await import_bundle(session, build_demo_bundle(TODAY))
        await session.commit()
        again = await import_bundle(session, build_demo_bundle(TODAY))
        await session.commit()
        assert not again.created
        rows = await count_rows(session)
        tomorrow = await import_bundle(session, build_demo_bundle(TODAY + timedelta(days=1)))
        await session.commit()
    assert tomorrow.updated["Slot"] > 0
    assert tomorrow.created["Patient"] == 0
    async with session_factory() as session:
        assert (await count_rows(session))["patient"] == rows["patient"]
