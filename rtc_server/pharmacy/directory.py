"""The clinic's pharmacy directory: search it, keep it, load it from the records
on file, and remember each patient's preferred pharmacy.

Rules:
- Anyone signed in searches the directory (it names businesses, not people);
  inactive pharmacies are left out unless an admin asks for them.
- Admins add and edit pharmacies (audited ``pharmacy.add``/``pharmacy.update``);
  anyone else is refused (403, audited as ``denied``). A pharmacy is
  deactivated, never deleted, so past refill requests still name it.
- ``load_from_records`` copies every FHIR ``Organization`` whose type names a
  pharmacy (``is_pharmacy_kind``) into the directory, matched on the
  organization's row, so loading again updates rather than duplicates.
- A patient's preferred pharmacy is theirs alone; it is set when they choose
  one for a refill request (or on its own) and audited.

Services commit their own transaction, except the ``*_in`` helpers that other
services call inside theirs.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role
from rtc_server.db import as_utc, utcnow
from rtc_server.errors import InvalidInput, NotFound
from rtc_server.pharmacy.models import Pharmacy, PreferredPharmacy
from rtc_server.pharmacy.shapes import LoadedOut, PharmacyIn, PharmacyOut, PharmacySearch
from rtc_server.records.models import Organization

#: ``Organization.type`` labels that name a pharmacy: "Pharmacy", HL7 RoleCode "PHARM",
#: NUCC taxonomy "Community/Retail Pharmacy" or its code 3336C0003X (333600000X family).
_PHARMACY_KIND = re.compile(r"pharm|^3336", re.IGNORECASE)
_NCPDP = re.compile(r"^[0-9]{7}$")
MAX_WORDS = 6


def is_pharmacy_kind(kind: str | None) -> bool:
    return bool(kind and _PHARMACY_KIND.search(kind))


def normalize(name: str) -> str:
    return " ".join(name.lower().split())[:200]


def pharmacy_out(row: Pharmacy) -> PharmacyOut:
    assert row.id is not None
    return PharmacyOut(
        id=row.id, name=row.name, phone=row.phone, fax=row.fax, address_line=row.address_line,
        city=row.city, state=row.state, zip=row.zip, ncpdp_id=row.ncpdp_id, active=row.active,
        from_records=row.organization_id is not None, updated_at=as_utc(row.updated_at),  # type: ignore[arg-type]
    )


async def _record(db: AsyncSession, actor: Actor, action: str, *, resource: str | None = None,
                  patient_id: int | None = None) -> None:
    await audit.record(
        db, action=action, actor_id=actor.user_id, actor_role=str(actor.role), patient_id=patient_id,
        resource=resource, request_id=actor.meta.request_id, ip=actor.meta.ip,
    )


# --- reading -----------------------------------------------------------------------

async def search(db: AsyncSession, actor: Actor, query: PharmacySearch) -> list[PharmacyOut]:
    """Pharmacies whose name, street, town or ZIP code match every word of ``query.q``
    (by name; at most ``query.limit``)."""
    stmt = select(Pharmacy)
    if not (query.include_inactive and actor.role == Role.admin):
        stmt = stmt.where(col(Pharmacy.active).is_(True))
    for word in query.q.lower().split()[:MAX_WORDS]:
        stmt = stmt.where(or_(
            col(Pharmacy.name_norm).contains(word, autoescape=True),
            func.lower(col(Pharmacy.address_line)).contains(word, autoescape=True),
            func.lower(col(Pharmacy.city)).contains(word, autoescape=True),
            col(Pharmacy.zip).startswith(word, autoescape=True),
        ))
    rows = (await db.exec(stmt.order_by(col(Pharmacy.name_norm), col(Pharmacy.id)).limit(query.limit))).all()
    return [pharmacy_out(r) for r in rows]


async def active_pharmacy(db: AsyncSession, pharmacy_id: int) -> Pharmacy | None:
    row = await db.get(Pharmacy, pharmacy_id)
    return row if row is not None and row.active else None


async def get_pharmacy(db: AsyncSession, actor: Actor, pharmacy_id: int) -> PharmacyOut:
    row = await db.get(Pharmacy, pharmacy_id)
    if row is None or (not row.active and actor.role != Role.admin):
        raise NotFound()
    return pharmacy_out(row)


# --- keeping it (admins) -----------------------------------------------------------

def _require_admin(actor: Actor, action: str, resource: str | None = None) -> None:
    actor.require_role(Role.admin, action=action, resource=resource)


def _apply(row: Pharmacy, body: PharmacyIn) -> None:
    for name, value in body.model_dump().items():
        setattr(row, name, value)
    row.name_norm = normalize(body.name)


async def _flush_unique(db: AsyncSession) -> None:
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        raise InvalidInput("ncpdp_id", "Another pharmacy in the directory has this NCPDP number.") from None


async def add_pharmacy(db: AsyncSession, actor: Actor, body: PharmacyIn, *, now: datetime) -> PharmacyOut:
    action = "pharmacy.add"
    _require_admin(actor, action)
    row = Pharmacy(name=body.name, name_norm="", created_at=now, updated_at=now, updated_by=actor.user_id)
    _apply(row, body)
    db.add(row)
    await _flush_unique(db)
    await _record(db, actor, action, resource=f"pharmacy:{row.id}")
    out = pharmacy_out(row)
    await db.commit()
    return out


async def update_pharmacy(
    db: AsyncSession, actor: Actor, pharmacy_id: int, body: PharmacyIn, *, now: datetime,
) -> PharmacyOut:
    """Replace a pharmacy's details (``active: false`` takes it out of the directory)."""
    action = "pharmacy.update"
    _require_admin(actor, action, f"pharmacy:{pharmacy_id}")
    row = await db.get(Pharmacy, pharmacy_id)
    if row is None:
        raise NotFound()
    _apply(row, body)
    row.updated_at, row.updated_by = now, actor.user_id
    db.add(row)
    await _flush_unique(db)
    await _record(db, actor, action, resource=f"pharmacy:{pharmacy_id}")
    out = pharmacy_out(row)
    await db.commit()
    return out


def _ncpdp_of(org: Organization) -> str | None:
    for ident in org.identifiers or []:
        system = str(ident.get("system") or "").lower()
        value = str(ident.get("value") or "").strip()
        if "ncpdp" in system and _NCPDP.match(value):
            return value
    return None


async def load_from_records_in(db: AsyncSession, *, now: datetime, by: int | None = None) -> LoadedOut:
    """Copy pharmacy organizations on file into the directory, in the caller's
    transaction (the demo and the importer's callers use this)."""
    orgs = (await db.exec(select(Organization).where(col(Organization.placeholder).is_(False)))).all()
    known = {
        p.organization_id: p
        for p in (await db.exec(select(Pharmacy).where(col(Pharmacy.organization_id).is_not(None)))).all()
    }
    taken = set((await db.exec(select(Pharmacy.ncpdp_id).where(col(Pharmacy.ncpdp_id).is_not(None)))).all())
    added = updated = 0
    for org in orgs:
        if not is_pharmacy_kind(org.kind) or not org.name.strip():
            continue
        row = known.get(org.id)
        ncpdp = _ncpdp_of(org)
        values: dict[str, Any] = {
            "name": org.name.strip()[:200], "name_norm": normalize(org.name), "phone": org.phone,
            "address_line": org.address_line, "city": org.city, "state": org.state, "zip": org.zip,
        }
        if row is None:
            row = Pharmacy(**values, organization_id=org.id, created_at=now, updated_at=now, updated_by=by,
                           ncpdp_id=ncpdp if ncpdp not in taken else None)
            added += 1
        else:
            for name, value in values.items():
                setattr(row, name, value)
            if ncpdp and row.ncpdp_id is None and ncpdp not in taken:
                row.ncpdp_id = ncpdp
            row.updated_at, row.updated_by = now, by
            updated += 1
        if row.ncpdp_id:
            taken.add(row.ncpdp_id)
        db.add(row)
    await db.flush()
    return LoadedOut(added=added, updated=updated)


async def load_from_records(db: AsyncSession, actor: Actor, *, now: datetime) -> LoadedOut:
    """Admins: load (or refresh) the directory from the pharmacy organizations on file."""
    action = "pharmacy.load"
    _require_admin(actor, action)
    out = await load_from_records_in(db, now=now, by=actor.user_id)
    await _record(db, actor, action, resource=f"added:{out.added};updated:{out.updated}")
    await db.commit()
    return out


# --- a patient's preferred pharmacy ------------------------------------------------

async def preferred_of(db: AsyncSession, patient_id: int) -> Pharmacy | None:
    """The patient's preferred pharmacy while it is still in the directory."""
    row = await db.get(PreferredPharmacy, patient_id)
    return await active_pharmacy(db, row.pharmacy_id) if row is not None else None


async def remember_preferred_in(db: AsyncSession, patient_id: int, pharmacy_id: int, now: datetime) -> None:
    """Set the patient's preferred pharmacy in the caller's transaction (an upsert,
    so two requests at once cannot collide on the key)."""
    table = PreferredPharmacy.__table__  # type: ignore[attr-defined]
    bind = db.get_bind()
    insert = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(patient_id=patient_id, pharmacy_id=pharmacy_id, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.patient_id], set_={"pharmacy_id": pharmacy_id, "updated_at": now})
    await db.exec(stmt)  # type: ignore[call-overload]


def own_patient(actor: Actor, action: str) -> int:
    actor.require(actor.is_patient and actor.patient_id is not None, action=action)
    assert actor.patient_id is not None
    return actor.patient_id


async def get_preferred(db: AsyncSession, actor: Actor) -> PharmacyOut | None:
    action = "pharmacy.preferred.read"
    patient_id = own_patient(actor, action)
    row = await preferred_of(db, patient_id)
    await _record(db, actor, action, patient_id=patient_id)
    await db.commit()
    return pharmacy_out(row) if row is not None else None


async def set_preferred(
    db: AsyncSession, actor: Actor, pharmacy_id: int, *, now: datetime | None = None,
) -> PharmacyOut:
    action = "pharmacy.preferred.set"
    patient_id = own_patient(actor, action)
    row = await active_pharmacy(db, pharmacy_id)
    if row is None:
        raise InvalidInput("pharmacy_id", "Choose a pharmacy from the directory.")
    await remember_preferred_in(db, patient_id, pharmacy_id, now or utcnow())
    await _record(db, actor, action, resource=f"pharmacy:{pharmacy_id}", patient_id=patient_id)
    out = pharmacy_out(row)
    await db.commit()
    return out
