"""Refills for the demo clinic: a pharmacy directory, and a pending refill request
in a provider's queue, so a newcomer finds both sides of the flow.

``rtc-server demo`` calls, after importing the bundle and creating the accounts::

    async with factory() as session:
        await seed_demo_refills(session)
        await session.commit()

The directory is what the records on file name as pharmacies
(``load_from_records_in``), plus ``DEMO_PHARMACIES`` (fictional, with
fictional NCPDP numbers). The first patient with an account and an active,
refillable prescription gets one pending request for it, at the first demo
pharmacy (also remembered as their preferred one); it waits in the prescriber's
queue. Running it again adds nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.models import Role, User, UserStatus
from rtc_server.db import utcnow
from rtc_server.pharmacy.directory import load_from_records_in, normalize, remember_preferred_in
from rtc_server.pharmacy.models import Pharmacy
from rtc_server.portal.refills.controlled import controlled_list
from rtc_server.portal.refills.models import RefillRequest, RefillStatus
from rtc_server.records.models import Medication, Patient

#: (name, street, town, state, zip, phone, fax, NCPDP): fictional pharmacies.
DEMO_PHARMACIES = [
    ("Harbor Street Pharmacy", "120 Harbor Street", "Cambridge", "MA", "02139", "617-555-0190",
     "617-555-0191", "9900011"),
    ("Elm Square Drug", "7 Elm Square", "Somerville", "MA", "02144", "617-555-0192", "617-555-0193",
     "9900012"),
    ("Riverside Community Pharmacy", "300 River Road", "Medford", "MA", "02155", "781-555-0194",
     "781-555-0195", "9900013"),
]


async def seed_demo_pharmacies(db: AsyncSession, now: datetime | None = None) -> list[int]:
    """The directory (in the caller's transaction); the ids of the demo pharmacies."""
    now = now or utcnow()
    await load_from_records_in(db, now=now)
    ids = []
    for name, street, town, state, zip_code, phone, fax, ncpdp in DEMO_PHARMACIES:
        row = (await db.exec(select(Pharmacy).where(col(Pharmacy.ncpdp_id) == ncpdp))).first()
        if row is None:
            row = Pharmacy(name=name, name_norm=normalize(name), address_line=street, city=town, state=state,
                           zip=zip_code, phone=phone, fax=fax, ncpdp_id=ncpdp, created_at=now, updated_at=now)
            db.add(row)
            await db.flush()
        assert row.id is not None
        ids.append(row.id)
    return ids


async def seed_demo_refills(db: AsyncSession, now: datetime | None = None) -> int | None:
    """The directory and one pending request (in the caller's transaction); the request's id."""
    now = now or utcnow()
    pharmacies = await seed_demo_pharmacies(db, now)
    if (await db.exec(select(RefillRequest.id))).first() is not None:
        return None
    controlled = await controlled_list(db)
    accounts = (await db.exec(select(User).where(
        col(User.role) == Role.patient, col(User.status) == UserStatus.active,
        col(User.patient_id).is_not(None),
    ).order_by(col(User.id)))).all()
    for user in accounts:
        meds = (await db.exec(select(Medication).where(
            col(Medication.patient_id) == user.patient_id, col(Medication.status) == "active",
            col(Medication.source) == "MedicationRequest").order_by(col(Medication.id).desc()))).all()
        med = next((m for m in meds if not controlled.covers(m)), None)
        if med is None or user.patient_id is None:
            continue
        patient = await db.get(Patient, user.patient_id)
        row = RefillRequest(
            patient_id=user.patient_id, medication_id=med.id or 0,
            practitioner_id=med.prescriber_id or (patient.primary_practitioner_id if patient else None),
            pharmacy_id=pharmacies[0], requested_by=user.id, medication_name=med.display[:300],
            dosage=med.dosage[:500] if med.dosage else None, note="I have about a week of tablets left.",
            status=RefillStatus.requested.value, requested_at=now - timedelta(hours=3),
        )
        db.add(row)
        await db.flush()
        await remember_preferred_in(db, user.patient_id, pharmacies[0], now)
        await audit.record(db, action="refill.request", actor_id=user.id, actor_role="patient",
                           patient_id=user.patient_id, resource=f"refill:{row.id}")
        return row.id
    return None
