"""No double booking, ever: fifty patients racing for one time get exactly one
booking and forty-nine "that time was just taken" answers, on SQLite and on
PostgreSQL, whether the time comes from published hours (its slot row is
created by the race's winner) or from an imported slot."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import select

from rtc_server.records.models import Appointment, Slot
from tests.api.test_appointments import (
    book,
    days_ahead,
    make_clinic,
    patient,
)

RACERS = 50

backends = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


async def race(app, session_factory, practitioner_id: int, start) -> list:
    patients = [await patient(app, session_factory, f"racer.{n}", given=f"Racer{n}", family="Lee")
                for n in range(RACERS)]
    try:
        return await asyncio.gather(*(book(p.client, practitioner_id, start) for p in patients))
    finally:
        for p in patients:
            await p.client.aclose()


def assert_one_winner(answers: list) -> None:
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * (RACERS - 1), codes
    for r in answers:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "slot_taken"
            assert r.json()["error"]["message"] == "That time was just taken. Please choose another time."


@backends
async def test_fifty_patients_race_for_one_published_time(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    start = days_ahead(2)
    answers = await race(app, session_factory, clinic.doctor_id, start)
    assert_one_winner(answers)
    async with session_factory() as db:
        booked = (await db.exec(select(Appointment).where(Appointment.start == start))).all()
        slots = (await db.exec(select(Slot).where(Slot.start == start))).all()
    assert len(booked) == 1 and len(slots) == 1
    assert booked[0].slot_id == slots[0].id and slots[0].status == "busy"
    winner = next(r for r in answers if r.status_code == 201)
    assert winner.json()["id"] == booked[0].id


@backends
async def test_fifty_patients_race_for_one_imported_slot(app, session_factory) -> None:
    clinic = await make_clinic(session_factory)
    start = days_ahead(2) + timedelta(minutes=5)  # off the published grid: only the slot offers it
    async with session_factory() as db:
        db.add(Slot(practitioner_id=clinic.other_id, start=start, end=start + timedelta(minutes=20)))
        await db.commit()
    answers = await race(app, session_factory, clinic.other_id, start)
    assert_one_winner(answers)
    async with session_factory() as db:
        booked = (await db.exec(
            select(Appointment).where(Appointment.practitioner_id == clinic.other_id))).all()
    assert len(booked) == 1
