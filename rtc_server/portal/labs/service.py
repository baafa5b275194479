"""Lab results as the patient sees them: released results only.

Every query here joins ``lab_release`` on ``state = 'released'``
(``released_labs``), after classifying what is new (``release.triage``), so a
held result is absent from every answer: listing, detail, history and the
dashboard alike. A held or unknown id answers 404, the same as another
patient's id. Opening a result (the detail) marks it opened, so it stops
showing as new.

Reads are audited (``lab.list``, ``lab.read``); refusals are audited as
``denied`` by the transport (``Actor.require``). Services commit.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pydantic_core
from sqlalchemy import Integer, bindparam, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.audit_writer import WRITER_INFO
from rtc_server.auth.actor import Actor
from rtc_server.db import SessionFactory, as_utc, utcnow
from rtc_server.errors import NotFound
from rtc_server.portal.labs.flags import FLAG_LABELS, flag_of, range_text
from rtc_server.portal.labs.models import LabHoldRule, LabRelease, LabState
from rtc_server.portal.labs.release import LAB_CATEGORY, UNCLASSIFIED_OF, hold_rules, triage
from rtc_server.portal.labs.shapes import (
    HELD_EXPLAINED,
    TURNAROUND,
    HeldTestOut,
    LabDetailOut,
    LabPoint,
    LabResultOut,
    LabTestOut,
)
from rtc_server.portal.records.access import own_patient, record
from rtc_server.readpool import READ_POOL_INFO, ReadPool
from rtc_server.records.models import Observation

#: The columns a result is shown from (rows, not ORM objects: lists are long).
RESULT_COLUMNS = (
    Observation.id, Observation.code, Observation.display, Observation.value_quantity,
    Observation.value_unit, Observation.value_string, Observation.reference_low,
    Observation.reference_high, Observation.reference_text, Observation.interpretation_code,
    Observation.effective_at, LabRelease.released_at, LabRelease.note, LabRelease.announced,
    LabRelease.opened_at, LabRelease.state, LabRelease.held_at,
)


@functools.cache
def labs_of(*, released_only: bool = True) -> Any:
    """SELECT of the classified lab results of the patient ``:patient_id`` (released
    only, unless a clinician's chart asks for held ones too), oldest first. Built
    once: building a statement costs more CPU than SQLite takes to run it."""
    query = (
        select(*RESULT_COLUMNS)
        .join(LabRelease, col(LabRelease.observation_id) == col(Observation.id))
        .where(col(LabRelease.patient_id) == bindparam("patient_id", type_=Integer),
               col(Observation.category) == LAB_CATEGORY)
        .order_by(col(Observation.effective_at), col(Observation.id))
    )
    if released_only:
        query = query.where(col(LabRelease.state) == LabState.released.value)
    return query


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def result_out(row: Any) -> LabResultOut:
    """A result as shown, from a row of ``RESULT_COLUMNS``. Built without validation
    (``model_construct``): the values come typed from the database, and a year of
    labs is a hundred results per answer."""
    flag = flag_of(row)
    low, high = _number(row.reference_low), _number(row.reference_high)
    return LabResultOut.model_construct(
        id=row.id, code=row.code, display=row.display or row.code or "Lab result",
        value=_number(row.value_quantity), value_text=row.value_string, unit=row.value_unit,
        reference_low=low, reference_high=high,
        reference_range=range_text(low, high, row.value_unit, row.reference_text),
        flag=flag, flag_label=FLAG_LABELS.get(flag) if flag else None,
        effective_at=as_utc(row.effective_at), released_at=as_utc(row.released_at), note=row.note,
        new=bool(row.state == LabState.released.value and row.announced and row.opened_at is None),
    )


def point(result: LabResultOut) -> LabPoint:
    return LabPoint.model_construct(id=result.id, effective_at=result.effective_at, value=result.value,
                                    flag=result.flag)


def group_tests(results: Sequence[LabResultOut]) -> list[LabTestOut]:
    """One entry per test code, latest result first in the list, each with its
    history (oldest first). ``results`` come oldest first."""
    by_code: dict[str, list[LabResultOut]] = {}
    for r in results:
        by_code.setdefault(r.code or f"#{r.id}", []).append(r)
    tests = [
        LabTestOut(code=rs[-1].code, display=rs[-1].display, unit=rs[-1].unit, latest=rs[-1],
                   history=[point(r) for r in rs])
        for rs in by_code.values()
    ]
    tests.sort(key=lambda t: (t.latest.effective_at is not None, t.latest.effective_at, t.latest.id),
               reverse=True)
    return tests


# --- the patient's list without models (the long answer) ---------------------------------
#
# A year of labs is about a hundred results; building two pydantic models per result
# (``model_construct``) cost more CPU than everything else in the request. The list
# is built as plain dicts in exactly ``LabsOut``'s shape and order and serialised by
# pydantic's own encoder (same datetime and float text as the models).

def _result_dict(row: Any) -> dict[str, Any]:
    flag = flag_of(row)
    low, high = _number(row.reference_low), _number(row.reference_high)
    return {
        "id": row.id, "code": row.code, "display": row.display or row.code or "Lab result",
        "value": _number(row.value_quantity), "value_text": row.value_string, "unit": row.value_unit,
        "reference_low": low, "reference_high": high,
        "reference_range": range_text(low, high, row.value_unit, row.reference_text),
        "flag": flag, "flag_label": FLAG_LABELS.get(flag) if flag else None,
        "effective_at": as_utc(row.effective_at), "released_at": as_utc(row.released_at), "note": row.note,
        "new": bool(row.state == LabState.released.value and row.announced and row.opened_at is None),
    }


def _test_dicts(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``group_tests`` on result dicts (``results`` oldest first)."""
    by_code: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_code.setdefault(r["code"] or f"#{r['id']}", []).append(r)
    tests = [
        {"code": rs[-1]["code"], "display": rs[-1]["display"], "unit": rs[-1]["unit"], "latest": rs[-1],
         "history": [{"id": r["id"], "effective_at": r["effective_at"], "value": r["value"],
                      "flag": r["flag"]} for r in rs]}
        for rs in by_code.values()
    ]
    tests.sort(key=lambda t: (t["latest"]["effective_at"] is not None, t["latest"]["effective_at"],
                              t["latest"]["id"]), reverse=True)
    return tests


def labs_json(rows: Sequence[Any], held: Sequence[Any]) -> tuple[bytes, int]:
    """The ``LabsOut`` answer for result rows (``RESULT_COLUMNS``, oldest first) and
    hold rules (code, display, reason), encoded; and the number of new results."""
    results = [_result_dict(r) for r in rows]
    new_count = sum(r["new"] for r in results)
    body = {
        "turnaround": TURNAROUND, "held_explained": HELD_EXPLAINED, "tests": _test_dicts(results),
        "new_count": new_count,
        "held_tests": [{"code": h.code, "display": h.display or h.code, "reason": h.reason} for h in held],
    }
    return pydantic_core.to_json(body), new_count


_HELD_LIST = select(LabHoldRule.code, LabHoldRule.display, LabHoldRule.reason).order_by(col(LabHoldRule.code))
_LABS_PARAMETERS = ("patient_id",)


async def list_labs_read(factory: SessionFactory, actor: Actor, *, now: datetime) -> bytes:
    """The patient's released results, grouped by test with their history, encoded,
    without an ORM session when it only reads: on the
    instance's ``ReadPool`` (SQLite), with its audit row through the group-commit
    writer, committed before this returns. A patient with results nobody has
    classified yet goes through ``list_labs_encoded`` (classifying writes)."""
    info = factory.kw.get("info") or {}
    writer = info.get(WRITER_INFO)
    pool: ReadPool | None = info.get(READ_POOL_INFO)
    patient_id = own_patient(actor, "lab.list")
    params = {"patient_id": patient_id}
    if pool is None or writer is None or not writer.running or await pool.all(
            pool.prepare(UNCLASSIFIED_OF, _LABS_PARAMETERS), params):
        async with factory() as db:
            return await list_labs_encoded(db, actor, now=now)
    rows = await pool.all(pool.prepare(labs_of(), _LABS_PARAMETERS), params)
    held = await pool.all(pool.prepare(_HELD_LIST, ()), {})
    body, _ = labs_json(rows, held)
    resource = f"patient:{patient_id}"
    # The row exactly as ``audit.record_read`` hands it to the writer.
    await writer.write({"at": utcnow(), "outcome": "success", "action": "lab.list", "actor_id": actor.user_id,
                        "actor_role": str(actor.role), "patient_id": patient_id, "resource": resource,
                        "request_id": actor.meta.request_id, "ip": actor.meta.ip})
    return body


async def list_labs_encoded(db: AsyncSession, actor: Actor, *, now: datetime) -> bytes:
    """The list through an ORM session: classifies unclassified results first (a
    write, committed with the audit row), then encodes as ``labs_json`` does."""
    patient_id = own_patient(actor, "lab.list")
    classified = await triage(db, now=now, patient_ids=[patient_id])
    rows = (await db.exec(labs_of(), params={"patient_id": patient_id})).all()
    held = (await db.exec(_HELD_LIST)).all()
    body, _ = labs_json(rows, held)
    await _audit_list(db, actor, patient_id, classified=bool(classified))
    return body


async def _audit_list(db: AsyncSession, actor: Actor, patient_id: int, *, classified: bool) -> None:
    resource = f"patient:{patient_id}"
    if classified:  # triage wrote: the classification and the audit row commit together
        await record(db, actor, "lab.list", patient_id=patient_id, resource=resource)
        await db.commit()
    else:  # a pure read: the audit row goes through the instance's group-commit writer
        await audit.record_read(
            db, action="lab.list", actor_id=actor.user_id, actor_role=str(actor.role),
            patient_id=patient_id, resource=resource, request_id=actor.meta.request_id, ip=actor.meta.ip)


async def held_tests(db: AsyncSession) -> list[HeldTestOut]:
    """The clinic's hold list (policy, not anyone's results)."""
    return [HeldTestOut(code=r.code, display=r.display or r.code, reason=r.reason)
            for r in (await hold_rules(db)).values()]


async def read_lab(db: AsyncSession, actor: Actor, observation_id: int, *, now: datetime) -> LabDetailOut:
    """One released result of the patient's, with the history of its test; marks it opened."""
    action = "lab.read"
    patient_id = own_patient(actor, action)
    await triage(db, now=now, patient_ids=[patient_id])
    resource = f"observation:{observation_id}"
    row = (await db.exec(labs_of().where(col(Observation.id) == observation_id),
                         params={"patient_id": patient_id})).first()
    actor.require(row is not None, action=action, resource=resource, patient_id=patient_id,
                  error=NotFound())
    result = result_out(row)
    if row.opened_at is None:
        await db.exec(  # type: ignore[call-overload]
            update(LabRelease)
            .where(col(LabRelease.observation_id) == observation_id, col(LabRelease.opened_at).is_(None))
            .values(opened_at=now)
            .execution_options(synchronize_session=False)
        )
    history = await _history(db, patient_id, row.code, observation_id)
    await record(db, actor, action, patient_id=patient_id, resource=resource)
    await db.commit()
    return LabDetailOut(result=result, history=history)


async def _history(db: AsyncSession, patient_id: int, code: str | None, observation_id: int,
                   released_only: bool = True) -> list[LabPoint]:
    query = labs_of(released_only=released_only)
    query = query.where(col(Observation.code) == code) if code is not None \
        else query.where(col(Observation.id) == observation_id)
    return [point(result_out(r)) for r in (await db.exec(query, params={"patient_id": patient_id})).all()]


async def chart_labs(
    db: AsyncSession, patient_id: int, *, now: datetime,
) -> tuple[list[LabTestOut], list[int]]:
    """A clinician's view of a chart's labs: every result, held ones included, and
    the ids of those held. The caller has opened the chart (``access.open_chart``)."""
    await triage(db, now=now, patient_ids=[patient_id])
    rows = (await db.exec(labs_of(released_only=False), params={"patient_id": patient_id})).all()
    held = [r.id for r in rows if r.state == LabState.held.value]
    return group_tests([result_out(r) for r in rows]), held

