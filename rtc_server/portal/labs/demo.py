"""Lab results for the demo clinic: history on file, recent results new, and one
held for a clinician's review, so every part of the Records tab, the Dashboard
and the console's results queue has something on it.

``rtc-server demo`` calls, after importing the bundle and creating the accounts::

    async with factory() as session:
        await prepare_demo_labs(session)
        await session.commit()

It holds hemoglobin A1c (LOINC 4548-4) for review with a reason patients read,
classifies the imported results as the import path does (a year-old history is
released, not news; last visit's results are released and new; none of them is
held, because the hold starts now), then adds a new A1c result for María Álvarez
that waits in Dr. Marsh's queue. Idempotent: a second call adds nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.db import utcnow
from rtc_server.demo.people import demo_id
from rtc_server.portal.labs.models import LabHoldRule, LabRelease, LabState
from rtc_server.portal.labs.release import LAB_CATEGORY, LOINC, triage
from rtc_server.records.models import Observation, Patient

A1C = "4548-4"
A1C_NAME = "Hemoglobin A1c/Hemoglobin.total in Blood"
HOLD_REASON = "Your clinician reviews your A1c with you and adds a note on what it means for your plan."
HELD_FHIR_ID = demo_id("Observation", "alvarez", "held-a1c")


async def prepare_demo_labs(db: AsyncSession, *, now: datetime | None = None) -> int | None:
    """See the module docstring; the held result's observation id (None if María is
    not on file). The caller commits."""
    now = now or utcnow()
    await triage(db, now=now)  # before the hold: what was imported is released
    if (await db.exec(select(LabHoldRule).where(col(LabHoldRule.code) == A1C))).first() is None:
        db.add(LabHoldRule(code=A1C, display="Hemoglobin A1c", reason=HOLD_REASON, set_at=now))
    existing = (await db.exec(select(Observation.id).where(col(Observation.fhir_id) == HELD_FHIR_ID))).first()
    if existing is not None:
        return existing
    patient_id = (await db.exec(select(Patient.id).where(
        col(Patient.fhir_id) == demo_id("Patient", "alvarez")))).first()
    if patient_id is None:
        return None
    obs = Observation(
        fhir_id=HELD_FHIR_ID, patient_id=patient_id, status="final", category=LAB_CATEGORY,
        code_system=LOINC, code=A1C, display=A1C_NAME, value_quantity=7.1, value_unit="%",
        reference_low=4.0, reference_high=5.6, interpretation_code="H",
        effective_at=now - timedelta(days=2), issued_at=now - timedelta(days=1),
    )
    db.add(obs)
    await db.flush()
    assert obs.id is not None
    db.add(LabRelease(observation_id=obs.id, patient_id=patient_id, state=LabState.held.value,
                      held_at=now, announced=False))
    return obs.id
