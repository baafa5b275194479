"""Finding the one record on file that a registration describes.

A registration names a person by first and last name, date of birth and zip.
Names compare in ``normalize_name`` form (case, accents, hyphens and
apostrophes do not matter); zips compare on their first five digits, so a
ZIP+4 on either side still matches.

Decisions:

- Exactly one record must fit. Two records that both fit (twins who share a
  name, a duplicate import) match nothing: we cannot tell whose it is.
- A record with no zip on file cannot be confirmed by zip. It is matched only
  when it is the single record with that name and birth date, and then never
  by email alone: the caller sends it to staff identity verification
  (``MatchKind.needs_verification``), whatever email the record has.
- A record of a deceased patient matches nothing.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.records.models import Patient
from rtc_server.records.names import normalize_name

#: More rows than this sharing a name and birth date is not a person, it is bad data.
_MAX_CANDIDATES = 20


class MatchKind(enum.StrEnum):
    confirmed = "confirmed"  # name, birth date and zip all match
    needs_verification = "needs_verification"  # record has no zip: staff must confirm


@dataclass(frozen=True)
class RecordMatch:
    patient: Patient
    kind: MatchKind


def zip5(value: str | None) -> str:
    """The five-digit zip in ``value`` ('' when it has none)."""
    digits = re.sub(r"\D", "", value or "")
    return digits[:5] if len(digits) >= 5 else ""


async def find_record(
    db: AsyncSession, *, first_name: str, last_name: str, birth_date: date, zip_code: str
) -> RecordMatch | None:
    """The single living record these details describe, or None."""
    given, family = normalize_name(first_name), normalize_name(last_name)
    if not given or not family:
        return None
    rows = (
        await db.exec(
            select(Patient)
            .where(
                col(Patient.family_norm) == family,
                col(Patient.birth_date) == birth_date,
                col(Patient.given_norm) == given,
            )
            .limit(_MAX_CANDIDATES)
        )
    ).all()
    living = [p for p in rows if p.deceased_at is None]
    entered = zip5(zip_code)
    by_zip = [p for p in living if zip5(p.zip) and zip5(p.zip) == entered]
    if len(by_zip) == 1:
        return RecordMatch(by_zip[0], MatchKind.confirmed)
    if by_zip:
        return None
    without_zip = [p for p in living if not zip5(p.zip)]
    if len(without_zip) == 1 and len(living) == 1:
        return RecordMatch(without_zip[0], MatchKind.needs_verification)
    return None
