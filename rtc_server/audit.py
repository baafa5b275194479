"""Append-only audit log: who did what to whose record, and whether it worked.

Rows are inserted in the caller's transaction (an action and its audit row
commit together). A sealer then chains them in commit order: each sealed row
stores ``seq`` (unique) and ``digest = HMAC(secret, prev_digest || row)``.
Sealing after commit, rather than hashing at insert, keeps concurrent writers
on several instances from forking the chain; ``seq`` being unique means two
sealers cannot both extend it. ``verify`` walks the chain and names the first
row whose stored digest does not match its contents. Each seal also records
the chain's head (``seq`` and digest) outside the database, in the data dir
and the log, so cutting rows off the end of the chain is detected too.

Rows never hold health data or secrets: ids, action names and outcomes only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio.to_thread
from sqlalchemy import Column, DateTime, Index, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.db import SessionFactory, as_utc, utcnow

log = logging.getLogger("rtc_server.audit")


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_seq", "seq", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    actor_id: int | None = Field(default=None, index=True)
    actor_role: str | None = Field(default=None, max_length=16)
    patient_id: int | None = Field(default=None, index=True)
    action: str = Field(max_length=64, index=True)
    resource: str | None = Field(default=None, max_length=128)
    outcome: str = Field(max_length=16)
    request_id: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    seq: int | None = Field(default=None)
    digest: str | None = Field(default=None, max_length=64)


async def record(
    session: AsyncSession,
    *,
    action: str,
    outcome: str = "success",
    actor_id: int | None = None,
    actor_role: str | None = None,
    patient_id: int | None = None,
    resource: str | None = None,
    request_id: str | None = None,
    ip: str | None = None,
) -> None:
    """Add an audit row to the caller's transaction (the caller commits)."""
    session.add(
        AuditEvent(
            at=utcnow(), actor_id=actor_id, actor_role=actor_role, patient_id=patient_id,
            action=action, resource=resource, outcome=outcome, request_id=request_id, ip=ip,
        )
    )


def _canonical(row: AuditEvent) -> bytes:
    at = as_utc(row.at)
    fields = [
        row.id, at.isoformat() if at else None, row.actor_id, row.actor_role, row.patient_id,
        row.action, row.resource, row.outcome, row.request_id, row.ip, row.seq,
    ]
    return json.dumps(fields, separators=(",", ":")).encode()


def _digest(key: bytes, prev: str, row: AuditEvent) -> str:
    return hmac.new(key, prev.encode() + b"|" + _canonical(row), hashlib.sha256).hexdigest()


def read_head(path: Path) -> tuple[int, str] | None:
    try:
        seq, digest = path.read_text().split()
        return int(seq), digest
    except (OSError, ValueError):
        return None


def _write_head(path: Path, seq: int, digest: str) -> None:
    known = read_head(path)
    if known is not None and known[0] >= seq:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{seq} {digest}\n")
    tmp.replace(path)


async def seal(
    session_factory: SessionFactory, key: bytes, *, head_file: Path | None = None,
    batch: int = 500,
) -> int:
    """Chain unsealed rows in id order; returns how many were sealed.

    Safe to run on every instance at once: a sealer that loses the race on
    ``seq`` rolls back and leaves the work to the winner.
    """
    total = await _seal_rows(session_factory, key, batch)
    if total and head_file is not None:
        async with session_factory() as session:
            last = await _last_sealed(session)
        if last is not None and last.seq and last.digest:
            await anyio.to_thread.run_sync(_write_head, head_file, last.seq, last.digest)
            log.info("audit chain head seq=%d digest=%s", last.seq, last.digest)
    return total


async def _last_sealed(session: AsyncSession) -> AuditEvent | None:
    """The row at the head of the chain (highest ``seq``), if any row is sealed."""
    return (
        await session.exec(
            select(AuditEvent).where(col(AuditEvent.seq).is_not(None))
            .order_by(col(AuditEvent.seq).desc()).limit(1)
        )
    ).first()


async def _seal_rows(session_factory: SessionFactory, key: bytes, batch: int) -> int:
    total = 0
    while True:
        async with session_factory() as session:
            last = await _last_sealed(session)
            rows = (
                await session.exec(
                    select(AuditEvent).where(col(AuditEvent.seq).is_(None))
                    .order_by(col(AuditEvent.id)).limit(batch)
                )
            ).all()
            if not rows:
                return total
            prev = last.digest if last and last.digest else ""
            seq = last.seq if last and last.seq else 0
            for row in rows:
                seq += 1
                row.seq = seq
                row.digest = _digest(key, prev, row)
                prev = row.digest
                session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return total
            total += len(rows)


@dataclass
class VerifyResult:
    checked: int
    unsealed: int
    bad_row_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


async def verify(
    session_factory: SessionFactory, key: bytes, *, head_file: Path | None = None
) -> VerifyResult:
    """Walk the chain in ``seq`` order; report the first row that does not match,
    or rows missing from the end compared with the recorded head."""
    result = await _verify_chain(session_factory, key)
    if not result.ok or head_file is None:
        return result
    head = await anyio.to_thread.run_sync(read_head, head_file)
    if head is not None and head[0] > result.checked:
        result.reason = (
            f"rows missing from the end: the chain stops at seq {result.checked}, "
            f"but seq {head[0]} was sealed"
        )
    return result


async def _verify_chain(session_factory: SessionFactory, key: bytes) -> VerifyResult:
    prev = ""
    expected_seq = 1
    checked = 0
    async with session_factory() as session:
        unsealed = (
            await session.exec(
                select(func.count()).select_from(AuditEvent).where(col(AuditEvent.seq).is_(None))
            )
        ).one()
        result = await session.stream_scalars(
            select(AuditEvent).where(col(AuditEvent.seq).is_not(None)).order_by(col(AuditEvent.seq))
        )
        async for row in result:
            if row.seq != expected_seq:
                return VerifyResult(checked, unsealed, row.id, f"sequence gap before seq {row.seq}")
            if not hmac.compare_digest(row.digest or "", _digest(key, prev, row)):
                return VerifyResult(checked, unsealed, row.id, "contents do not match the chain")
            prev = row.digest or ""
            expected_seq += 1
            checked += 1
    return VerifyResult(checked, unsealed)
