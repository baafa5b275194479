"""Patient search in the console: find a patient of the clinic by name, date of
birth or MRN, and see whether their chart is open to you.

Rules:
- Providers only: front-desk and help-desk staff, admins and patients are
  refused (403, audited as ``denied``); help-desk staff see tickets, never
  charts.
- The search covers the whole clinic: a provider finds patients outside their
  care too, marked ``access: "none"``. Opening such a chart takes a cross-cover
  reason they type (``POST /console/patients/{id}/cross-cover``, audited), then
  ``GET /console/patients/{id}/chart`` (``portal.records``; every chart opened
  is audited there).
- Every search is audited: one row per patient shown (so a patient can later
  learn who looked them up), or one row when nothing matched. The words
  searched for are not stored: audit rows hold no free text.

The transport is at the bottom (``routes``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.auth.actor import Actor
from rtc_server.portal.records.access import (
    care_team_clause,
    grant_clause,
    practitioner_of,
    record,
    require_clinician,
)
from rtc_server.records.models import Patient
from rtc_server.records.names import normalize_name

MAX_WORDS = 4
#: Rows read before ranking (care team first), of which ``limit`` are shown.
READ_LIMIT = 200


class PatientSearchQuery(BaseModel):
    """``q``: words of the name (any order, beginnings of names are enough) or an MRN;
    ``birth_date`` narrows it (or is enough on its own)."""

    model_config = ConfigDict(extra="forbid")
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    birth_date: date | None = None
    limit: int = Field(default=25, ge=1, le=50)

    @model_validator(mode="after")
    def _something(self) -> PatientSearchQuery:
        if len(normalize_name(self.q).replace(" ", "")) < 2 and self.birth_date is None:
            raise ValueError("Enter at least two letters of a name, an MRN or a date of birth.")
        return self


class PatientHit(BaseModel):
    id: int
    name: str
    birth_date: date
    gender: str | None
    mrn: str | None
    city: str | None
    #: ``care_team``: your patient; ``cross_cover``: opened with a reason you gave; ``none``: give one first.
    access: Literal["care_team", "cross_cover", "none"]


def _name(p: Patient) -> str:
    return " ".join(x for x in (p.given_name, p.middle_name, p.family_name) if x)


def _word_clause(raw: str) -> object:
    """A typed word matches the beginning of a given or family name (any of them), or the MRN."""
    mrn = func.upper(col(Patient.mrn)) == raw.upper()
    word = normalize_name(raw)
    if not word:
        return mrn
    return or_(
        col(Patient.given_norm).startswith(word, autoescape=True),
        col(Patient.given_norm).contains(" " + word, autoescape=True),
        col(Patient.family_norm).startswith(word, autoescape=True),
        col(Patient.family_norm).contains(" " + word, autoescape=True),
        mrn,
    )


async def search_patients(db: AsyncSession, actor: Actor, query: PatientSearchQuery, *,
                          now: datetime) -> list[PatientHit]:
    """Patients matching every word (and the birth date), your own patients first."""
    action = "patient.search"
    require_clinician(actor, action)
    stmt = select(Patient)
    for raw in query.q.replace(",", " ").split()[:MAX_WORDS]:
        stmt = stmt.where(_word_clause(raw))  # type: ignore[arg-type]
    if query.birth_date is not None:
        stmt = stmt.where(col(Patient.birth_date) == query.birth_date)
    rows = (await db.exec(stmt.order_by(col(Patient.family_norm), col(Patient.given_norm), col(Patient.id))
                          .limit(READ_LIMIT))).all()
    ids = [p.id for p in rows if p.id is not None]
    mine = await practitioner_of(db, actor)
    team: set[int] = set()
    if ids and mine is not None:
        team = set((await db.exec(select(Patient.id).where(
            col(Patient.id).in_(ids), care_team_clause(mine, Patient.id)))).all())  # type: ignore[arg-type]
    covered: set[int] = set()
    if ids:
        covered = set((await db.exec(select(Patient.id).where(
            col(Patient.id).in_(ids), grant_clause(actor.user_id, Patient.id, now)))).all())  # type: ignore[arg-type]

    def access(pid: int) -> Literal["care_team", "cross_cover", "none"]:
        return "care_team" if pid in team else "cross_cover" if pid in covered else "none"

    ranked = sorted(rows, key=lambda p: (p.id not in team, p.id not in covered))[:query.limit]
    out = [PatientHit(id=p.id or 0, name=_name(p), birth_date=p.birth_date, gender=p.gender, mrn=p.mrn,
                      city=p.city, access=access(p.id or 0)) for p in ranked]
    for hit in out:
        await record(db, actor, action, patient_id=hit.id, resource=f"patient:{hit.id};access:{hit.access}")
    if not out:
        await record(db, actor, action, patient_id=None, resource="results:0")
    await db.commit()
    return out


# --- transport ------------------------------------------------------------------------------

async def search(call: Call) -> Response:
    """Find patients of the clinic by name, MRN or date of birth (providers); every search is audited."""
    return json_response(await search_patients(call.db, call.actor, call.query, now=call.deps.clock()))


routes: list[BaseRoute] = [
    ApiRoute("/console/patients", search, methods=["GET"], query=PatientSearchQuery, response=PatientHit,
             response_list=True, tag="console"),
]
