"""Which medications are controlled substances, and so are never refilled online.

A medication is controlled when its RxNorm code, or an ingredient named as a
whole word in its name, is on either list:

- ``BASELINE``: ingredients on the US DEA schedules II to V that a primary-care
  clinic meets (opioids, stimulants, benzodiazepines and other sedatives,
  anabolic steroids, some anticonvulsants). Federal law, so a clinic cannot
  take one off; it is code, reviewed like code.
- ``ControlledMedication`` rows: the clinic's additions (a state that schedules
  gabapentin, a product code, a clinic policy), kept by admins in the console
  (``/admin/controlled-medications``).

Matching names as whole words catches combination products ("Hydrocodone
Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet") without catching a name
that merely contains an ingredient's letters. A medication with neither a
listed code nor a listed ingredient is refillable online; the prescriber still
decides each request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role
from rtc_server.errors import InvalidInput, NotFound
from rtc_server.portal.refills.models import ControlledMedication
from rtc_server.portal.refills.shapes import ControlledIn, ControlledOut
from rtc_server.records.models import Medication

BASELINE: frozenset[str] = frozenset({
    # Schedule II: opioids and stimulants
    "oxycodone", "hydrocodone", "morphine", "hydromorphone", "fentanyl", "methadone", "oxymorphone",
    "tapentadol", "meperidine", "codeine", "levorphanol", "sufentanil", "alfentanil", "remifentanil",
    "amphetamine", "dextroamphetamine", "lisdexamfetamine", "methamphetamine", "methylphenidate",
    "dexmethylphenidate", "cocaine", "nabilone", "pentobarbital", "secobarbital",
    # Schedule III
    "buprenorphine", "testosterone", "nandrolone", "oxandrolone", "methyltestosterone", "ketamine",
    "esketamine", "dronabinol", "butalbital", "benzphetamine", "phendimetrazine", "perampanel",
    # Schedule IV
    "alprazolam", "lorazepam", "diazepam", "clonazepam", "temazepam", "triazolam", "chlordiazepoxide",
    "clorazepate", "midazolam", "oxazepam", "estazolam", "flurazepam", "clobazam", "zolpidem",
    "zaleplon", "eszopiclone", "suvorexant", "lemborexant", "daridorexant", "tramadol", "carisoprodol",
    "phenobarbital", "modafinil", "armodafinil", "solriamfetol", "phentermine", "butorphanol",
    "pentazocine", "eluxadoline", "lorcaserin",
    # Schedule V
    "pregabalin", "lacosamide", "brivaracetam", "cenobamate", "diphenoxylate", "difenoxin",
})


def _words(name: str) -> set[str]:
    return set(re.findall(r"[a-z]+", name.lower()))


def is_controlled(code: str | None, name: str, *, codes: Iterable[str] = (),
                  names: Iterable[str] = ()) -> bool:
    """Pure check: ``code`` listed, or an ingredient of either list in ``name``."""
    if code and code in set(codes):
        return True
    words = _words(name)
    if words & BASELINE:
        return True
    for listed in names:
        parts = listed.lower().split()
        if len(parts) == 1 and parts[0] in words:
            return True
        if len(parts) > 1 and re.search(r"\b" + r"\s+".join(map(re.escape, parts)) + r"\b", name.lower()):
            return True
    return False


class ControlledList:
    """The clinic's list as read once for a request (a handful of rows)."""

    def __init__(self, rows: Iterable[ControlledMedication]) -> None:
        rows = list(rows)
        self.codes = {r.code for r in rows if r.code}
        self.names = [r.name for r in rows if r.name]

    def covers(self, med: Medication) -> bool:
        return is_controlled(med.code, med.display, codes=self.codes, names=self.names)


async def controlled_list(db: AsyncSession) -> ControlledList:
    return ControlledList((await db.exec(select(ControlledMedication))).all())


# --- the clinic's additions (admins keep them; clinicians may read them) ---------------

def _out(row: ControlledMedication) -> ControlledOut:
    assert row.id is not None
    return ControlledOut(id=row.id, code=row.code, name=row.name, schedule=row.schedule)


async def _record(db: AsyncSession, actor: Actor, action: str, resource: str | None = None) -> None:
    await audit.record(db, action=action, actor_id=actor.user_id, actor_role=str(actor.role),
                       resource=resource, request_id=actor.meta.request_id, ip=actor.meta.ip)


async def list_additions(db: AsyncSession, actor: Actor) -> list[ControlledOut]:
    actor.require_role(Role.admin, Role.provider, action="controlled.list")
    rows = (await db.exec(select(ControlledMedication).order_by(col(ControlledMedication.id)))).all()
    return [_out(r) for r in rows]


async def add_addition(db: AsyncSession, actor: Actor, body: ControlledIn, *, now: datetime) -> ControlledOut:
    action = "controlled.add"
    actor.require_role(Role.admin, action=action)
    row = ControlledMedication(code=body.code, name=body.name.lower() if body.name else None,
                               schedule=body.schedule, added_by=actor.user_id, added_at=now)
    db.add(row)
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        field = "code" if body.code else "name"
        raise InvalidInput(field, "This medication is already on the list.") from None
    await _record(db, actor, action, f"controlled:{row.id}")
    out = _out(row)
    await db.commit()
    return out


async def remove_addition(db: AsyncSession, actor: Actor, addition_id: int) -> None:
    action = "controlled.remove"
    actor.require_role(Role.admin, action=action, resource=f"controlled:{addition_id}")
    row = await db.get(ControlledMedication, addition_id)
    if row is None:
        raise NotFound()
    await db.delete(row)
    await _record(db, actor, action, f"controlled:{addition_id}")
    await db.commit()
