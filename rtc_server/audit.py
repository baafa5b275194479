"""Append-only audit log: who did what to whose record, and whether it worked.

Rows never hold health data or secrets: ids, action names and outcomes only.

How a change to the log is caught
---------------------------------
- **Row tag.** Rows are inserted in the caller's transaction (an action and its
  audit row commit together). As it is inserted, each row gets a tag,
  ``HMAC(key, row)``, kept in ``digest`` until the row is sealed. A row written
  into the database by anything but this server has no valid tag (the key is
  not in the database), and a row edited before it was sealed no longer matches
  its tag. Every engine that writes audit rows needs the key: :func:`bind_key`.
- **Chain.** A sealer per instance (:class:`Sealer`) then chains tagged rows in
  id order: each sealed row stores ``seq`` (1, 2, 3 …, unique) and ``digest =
  HMAC(key, previous digest | row)``. Chaining after commit rather than at insert
  keeps concurrent writers on several instances from forking the chain; ``seq``
  being unique, and a row being sealed only while its ``seq`` is empty, means
  two sealers cannot both extend it.
- **Head.** Each head the sealer records (``seq`` and digest of the last sealed
  row) goes to the log at INFO (``audit chain head seq=… digest=…``) and to
  ``<data dir>/audit-head``. Rows cut off the end, or un-sealed and re-chained,
  no longer reach or match a recorded head. The copy that counts is the one kept
  off the database host (docs/security.md): ``rtc-server audit verify --head``.

The sealer never seals a row whose id is below the highest sealed id (inserted
or un-sealed after its neighbours were sealed), a row without a valid tag, or a
copy of another row; it never extends a chain that no longer matches the head it
recorded. It says so at ERROR and leaves the rows for :func:`verify`, which only
reads and names the first edited, inserted or missing row.

Ids and commit order: SQLite has one writer, so ids arrive in commit order with
no gaps. PostgreSQL hands ids out before commit, so a lower id can commit after
a higher one, and a rolled-back insert leaves a gap. The sealer therefore waits
at an id gap (``gap_settle_seconds``) before sealing past it; a row committing
later still is reported as below the sealed head. Gaps are tampering on SQLite
and only noted on PostgreSQL. What no check here can see: a row deleted before
it was sealed on PostgreSQL (seconds), and anything done by someone holding the
key, short of the heads kept elsewhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from sqlalchemy import Column, DateTime, Engine, Index, bindparam, event, func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.datadir import ensure_private_dir, write_private_file
from rtc_server.db import SessionFactory, as_utc, utcnow

log = logging.getLogger("rtc_server.audit")

#: ``verify`` reports a row still unsealed this long after it was written.
STALE_AFTER = timedelta(minutes=10)
#: How long the sealer waits at an id gap for a slower transaction to commit.
GAP_SETTLE_SECONDS = 60.0
#: ``verify`` stops collecting problems after this many (the first ones matter).
MAX_PROBLEMS = 1000


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
    #: The row tag until sealed, then the chain digest.
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


async def record_read(
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
    """Audit a read and end the caller's transaction: return once the row is
    committed. The caller's transaction must hold no writes of its own (use
    :func:`record` and commit for a request that changed something).

    With this instance's group-commit writer (``audit_writer.WRITER_INFO`` in the
    session's ``info``) the row goes into the writer's next batch and the caller's
    transaction, which only read, ends without a write; otherwise the row is
    committed in the caller's transaction."""
    from rtc_server.audit_writer import WRITER_INFO

    values = {
        "at": utcnow(), "actor_id": actor_id, "actor_role": actor_role, "patient_id": patient_id,
        "action": action, "resource": resource, "outcome": outcome, "request_id": request_id, "ip": ip,
    }
    writer = session.info.get(WRITER_INFO)
    if writer is None or not writer.running or session.new or session.dirty or session.deleted:
        session.add(AuditEvent(**values))
        await session.commit()
        return
    # Ends the read (nothing to commit: no write transaction on SQLite), and hands
    # its connection back while the row waits for its batch.
    await session.commit()
    await writer.write(values)


def tagged_values(engine: AsyncEngine | Engine, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` of a new row with its tag in ``digest``, as the ORM insert does it."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    key = _KEYS.get(sync)
    if key is None and sync not in _WARNED:
        _WARNED.add(sync)
        log.warning("audit rows written without the server key (audit.bind_key was not "
                    "called for this engine): the sealer will refuse them as forged")
    row = _Values(**values)
    return {**values, "seq": None, "digest": _row_tag(key, row) if key is not None else None}


class _Values:
    """A row's content as ``_row_tag`` reads it, without building a model."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


# --- keys and digests ----------------------------------------------------------

_KEYS: weakref.WeakKeyDictionary[Engine, bytes] = weakref.WeakKeyDictionary()
_WARNED: weakref.WeakSet[Engine] = weakref.WeakSet()


def bind_key(engine: AsyncEngine | Engine, key: bytes) -> None:
    """Tag the audit rows inserted through ``engine`` with ``key`` (the server
    secret). Call it where the engine is made; rows written through an engine
    without a key carry no tag, and the sealer refuses them as forged."""
    _KEYS[engine.sync_engine if isinstance(engine, AsyncEngine) else engine] = key


@event.listens_for(AuditEvent, "before_insert")
def _tag_new_row(_mapper: object, connection: Any, row: AuditEvent) -> None:
    if row.seq is not None:
        return
    key = _KEYS.get(connection.engine)
    if key is None:
        row.digest = None
        if connection.engine not in _WARNED:
            _WARNED.add(connection.engine)
            log.warning("audit rows written without the server key (audit.bind_key was not "
                        "called for this engine): the sealer will refuse them as forged")
        return
    row.digest = _row_tag(key, row)


def _content(row: AuditEvent) -> list[Any]:
    at = as_utc(row.at)
    return [
        at.isoformat() if at else None, row.actor_id, row.actor_role, row.patient_id,
        row.action, row.resource, row.outcome, row.request_id, row.ip,
    ]


def _canonical(row: AuditEvent, seq: int | None) -> bytes:
    return json.dumps([row.id, *_content(row), seq], separators=(",", ":")).encode()


def _digest(key: bytes, prev: str, row: AuditEvent, seq: int | None = None) -> str:
    """The chain digest of ``row`` sealed as ``seq`` (default: its own) after ``prev``."""
    body = _canonical(row, row.seq if seq is None else seq)
    return hmac.new(key, prev.encode() + b"|" + body, hashlib.sha256).hexdigest()


def _row_tag(key: bytes, row: AuditEvent) -> str:
    """The tag covers everything but ``id`` and ``seq``, which the database
    assigns after the tag is made; a copy of an unsealed row (same tag) is
    caught as a duplicate instead."""
    body = json.dumps(_content(row), separators=(",", ":")).encode()
    return hmac.new(key, b"row|" + body, hashlib.sha256).hexdigest()


def _tag_ok(key: bytes, row: AuditEvent) -> bool:
    return bool(row.digest) and hmac.compare_digest(row.digest or "", _row_tag(key, row))


def _untagged(row: AuditEvent) -> str:
    if not row.digest:
        return "no row tag: written into the database by hand (forged), or its seal was cleared"
    return "row tag does not match: edited, or written into the database by hand (forged)"


def _content_key(row: AuditEvent) -> str:
    return json.dumps(_content(row), separators=(",", ":"))


# --- the head on record --------------------------------------------------------

_HEAD_RE = re.compile(r"^\s*(?:seq=)?(\d+)[\s:,]+(?:digest=)?([0-9a-f]{64})\s*$")


@dataclass(frozen=True)
class Head:
    """The chain's last sealed row as recorded: its ``seq`` and digest."""

    seq: int
    digest: str

    @classmethod
    def parse(cls, text: str) -> Head:
        """``38:9f…``, ``38 9f…`` or the log's ``seq=38 digest=9f…``."""
        m = _HEAD_RE.match(text)
        if not m:
            raise ValueError("expected SEQ:DIGEST (the digest is 64 hex characters)")
        return cls(int(m.group(1)), m.group(2))

    def __str__(self) -> str:
        return f"{self.seq}:{self.digest}"


@dataclass(frozen=True)
class HeadRecord:
    """The head file: the head, and whether a sealer adopted the chain because
    no head was on record (``adopted`` = the seq it found then, and when)."""

    head: Head
    adopted: tuple[int, str] | None = None


def read_head_file(path: Path) -> HeadRecord | None:
    try:
        lines = path.read_text().splitlines()
        head = Head.parse(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    adopted = None
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "adopted" and parts[1].isdigit():
            adopted = (int(parts[1]), parts[2])
    return HeadRecord(head, adopted)


def _write_head_file(path: Path, record: HeadRecord, *, force: bool = False) -> None:
    """Record a newer head (never move the recorded head backwards unless forced)."""
    known = read_head_file(path)
    if known is not None and known.head.seq >= record.head.seq and not force:
        return
    if not path.parent.is_dir():
        ensure_private_dir(path.parent)
    text = f"{record.head.seq} {record.head.digest}\n"
    if record.adopted:
        text += f"adopted {record.adopted[0]} {record.adopted[1]}\n"
    write_private_file(path, text)


# --- checking a chain ----------------------------------------------------------

class _Chain:
    """Walks sealed rows in ``seq`` order; :meth:`feed` returns what is wrong
    with a row. After a bad row it goes on from the row's stored digest, so
    each edited row is named on its own."""

    def __init__(self, key: bytes, start: Head | None = None) -> None:
        self.key = key
        self.seq = start.seq if start else 0
        self.digest = start.digest if start else ""

    def feed(self, row: AuditEvent) -> str | None:
        problem = None
        if row.seq != self.seq + 1:
            gone = _span(self.seq + 1, (row.seq or 0) - 1)
            problem = f"seq {gone} missing before this row (sealed rows deleted)"
        elif not hmac.compare_digest(row.digest or "", _digest(self.key, self.digest, row)):
            problem = "contents do not match the chain (edited after it was sealed)"
        self.seq = row.seq or 0
        self.digest = row.digest or ""
        return problem

    @property
    def head(self) -> Head | None:
        return Head(self.seq, self.digest) if self.seq else None


class ChainBroken(Exception):
    """The chain does not match a recorded head, or is broken past it."""

    def __init__(self, row_id: int | None, text: str) -> None:
        super().__init__(f"row id {row_id}: {text}" if row_id is not None else text)
        self.row_id = row_id


async def _check_from(session: AsyncSession, key: bytes, claims: Sequence[Head]) -> Head | None:
    """Check the chain from the earliest recorded head (or from seq 1 when none
    is given) to its end; every head on record must be on it. Returns the end."""
    ordered = sorted(set(claims), key=lambda h: h.seq)
    start = ordered[0] if ordered else None
    chain = _Chain(key, start)
    wanted = _by_seq(ordered)
    if start is not None:
        row = (await session.exec(select(AuditEvent).where(AuditEvent.seq == start.seq))).first()
        if row is None:
            end = await _last_sealed(session)
            if end is None or (end.seq or 0) < start.seq:
                raise ChainBroken(None, _cut_off_text(end, start))
            raise ChainBroken(None, f"seq {start.seq} (the recorded head {start}) is missing: "
                                    "sealed rows were deleted")
        for claim in wanted[start.seq]:
            if not hmac.compare_digest(row.digest or "", claim.digest):
                raise ChainBroken(row.id, _rewritten_text(claim))
        chain.digest = row.digest or ""
    rows = await session.stream_scalars(
        select(AuditEvent).where(col(AuditEvent.seq) > chain.seq).order_by(col(AuditEvent.seq))
    )
    async for row in rows:
        problem = chain.feed(row)
        if problem:
            raise ChainBroken(row.id, problem)
        for claim in wanted.get(row.seq or 0, ()):
            if not hmac.compare_digest(claim.digest, row.digest or ""):
                raise ChainBroken(row.id, _rewritten_text(claim))
    beyond = [h for h in ordered if h.seq > chain.seq]
    if beyond:
        raise ChainBroken(None, _cut_off_text(chain.head, beyond[-1]))
    return chain.head


def _by_seq(heads: Sequence[Head]) -> dict[int, list[Head]]:
    found: dict[int, list[Head]] = {}
    for h in heads:
        found.setdefault(h.seq, []).append(h)
    return found


def _rewritten_text(claim: Head) -> str:
    return (f"seq {claim.seq} does not match the recorded head {claim}: "
            "the chain was rewritten at or before this row")


def _cut_off_text(end: Head | AuditEvent | None, recorded: Head) -> str:
    last = end.seq if end is not None and end.seq else 0
    return (f"the chain ends at seq {last} but seq {recorded.seq} was sealed "
            f"(recorded head {recorded}): rows were cut off or un-sealed")


async def _last_sealed(session: AsyncSession) -> AuditEvent | None:
    """The row at the head of the chain (highest ``seq``), if any row is sealed."""
    return (
        await session.exec(
            select(AuditEvent).where(col(AuditEvent.seq).is_not(None))
            .order_by(col(AuditEvent.seq).desc()).limit(1)
        )
    ).first()


async def _highest_sealed_id(session: AsyncSession) -> int:
    value = (
        await session.exec(select(func.max(AuditEvent.id)).where(col(AuditEvent.seq).is_not(None)))
    ).one()
    return int(value or 0)


def _gaps_are_tampering(session: AsyncSession) -> bool:
    """SQLite hands out ids in commit order without gaps; PostgreSQL does not."""
    return session.get_bind().dialect.name == "sqlite"


# --- sealing -------------------------------------------------------------------

class Sealer:
    """Chains this server's new audit rows; one per process.

    Remembers the head it last recorded, so deleting or rolling back the head
    file while it runs changes nothing (it writes the file back). With no head
    on record and rows already sealed (a new instance, a lost file) it checks
    the whole chain, then adopts its end, says so at WARNING, and marks the
    head file as adopted for ``verify`` to mention.
    """

    def __init__(
        self, session_factory: SessionFactory, key: bytes, *, head_file: Path | None = None,
        heads: Sequence[Head] = (), batch: int = 500, gap_settle_seconds: float = GAP_SETTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = session_factory
        self._key = key
        self._head_file = head_file
        self._given = tuple(heads)
        self._batch = batch
        self._settle = gap_settle_seconds
        self._clock = clock
        self._known: Head | None = None
        self._adopted: tuple[int, str] | None = None
        self._lock = asyncio.Lock()
        self._gaps: dict[tuple[int, int], float] = {}
        self._gaps_told: set[tuple[int, int]] = set()
        self._reported: set[int] = set()
        #: Why the last round refused to extend the chain (None when it did not).
        self.problem: str | None = None

    async def run_forever(self, every_seconds: float) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.run_once()
            except Exception:  # keep sealing; a failed round is retried next tick
                log.exception("audit sealing failed")

    async def run_once(self) -> int:
        """One round: check the chain against the recorded head, then seal
        what may be sealed. Returns how many rows were sealed."""
        async with self._lock:
            try:
                head = await self._checked_head()
            except ChainBroken as exc:
                self._refuse(str(exc))
                await self._keep_head_file()
                return 0
            self.problem = None
            total = 0
            while True:
                sealed, head, more = await self._seal_batch(head)
                total += sealed
                if sealed:
                    await self._record(head)
                if not more:
                    return total

    async def _keep_head_file(self) -> None:
        """Put the head this sealer knows back on file if the file is gone: it is
        evidence for ``verify``, and a tampered chain must not erase it."""
        if self._known is None or self._head_file is None:
            return
        path, record = self._head_file, HeadRecord(self._known, self._adopted)
        if await anyio.to_thread.run_sync(read_head_file, path) is None:
            log.warning("audit head file %s was missing; written back (seq=%d)", path, self._known.seq)
            await anyio.to_thread.run_sync(lambda: _write_head_file(path, record))

    def _refuse(self, problem: str) -> None:
        if problem != self.problem:
            log.error("AUDIT LOG TAMPERED, not sealing: %s. Run `rtc-server audit verify`.", problem)
        self.problem = problem

    async def _checked_head(self) -> Head | None:
        on_file = (
            await anyio.to_thread.run_sync(read_head_file, self._head_file) if self._head_file else None
        )
        if on_file is not None and on_file.adopted:
            self._adopted = on_file.adopted
        claims = [h for h in (self._known, on_file.head if on_file else None, *self._given) if h]
        async with self._factory() as session:
            end = await _check_from(session, self._key, claims)
        if not claims and end is not None:
            self._adopted = (end.seq, utcnow().isoformat(timespec="seconds"))
            log.warning(
                "no audit chain head on record (%s); the chain already holds seq 1 to %d and checks out, "
                "so this sealer adopts seq=%d digest=%s. Compare it with the last head shipped off "
                "this host: rows cut off before now would not show.",
                self._head_file, end.seq, end.seq, end.digest,
            )
        if end is not None and self._head_file is not None and on_file is None and self._known:
            log.warning("audit head file %s was missing; written back (seq=%d)", self._head_file, end.seq)
        if end is not None and (on_file is None or on_file.head != end or self._known is None):
            await self._record(end, quiet=self._known == end)
        return end

    async def _record(self, head: Head | None, *, quiet: bool = False) -> None:
        if head is None:
            return
        self._known = head
        if self._head_file is not None:
            await anyio.to_thread.run_sync(
                lambda: _write_head_file(self._head_file, HeadRecord(head, self._adopted))  # type: ignore[arg-type]
            )
        if not quiet:
            log.info("audit chain head seq=%d digest=%s", head.seq, head.digest)

    def _report(self, row: AuditEvent, problem: str) -> None:
        if row.id is not None and row.id not in self._reported:
            self._reported.add(row.id)
            log.error("AUDIT LOG TAMPERED: row id %s %s; not sealing it. Run `rtc-server audit verify`.",
                      row.id, problem)

    def _gap_settled(self, first_missing: int, next_id: int) -> bool:
        seen = self._gaps.setdefault((first_missing, next_id), self._clock())
        return self._clock() - seen >= self._settle

    async def _seal_batch(self, head: Head | None) -> tuple[int, Head | None, bool]:
        """Seal the next batch; returns (rows sealed, new head, whether to go on)."""
        async with self._factory() as session:
            floor = await _highest_sealed_id(session)
            await self._report_below(session, floor)
            rows = (
                await session.exec(
                    select(AuditEvent).where(col(AuditEvent.seq).is_(None), col(AuditEvent.id) > floor)
                    .order_by(col(AuditEvent.id)).limit(self._batch)
                )
            ).all()
            if not rows:
                return 0, head, False
            originals = await _first_of_each_content(session, rows)
            accepted: list[AuditEvent] = []
            expected = floor + 1
            stopped = False
            for row in rows:
                assert row.id is not None
                if row.id > expected:
                    if not self._gap_settled(expected, row.id):
                        stopped = True
                        break
                    missing = _span(expected, row.id - 1)
                    if (expected, row.id) in self._gaps_told:
                        pass
                    elif _gaps_are_tampering(session):
                        log.error("AUDIT LOG TAMPERED: row id %s missing (deleted before it was sealed)",
                                  missing)
                    else:
                        log.info("audit row id %s never committed (rolled back); sealing past it", missing)
                    self._gaps_told.add((expected, row.id))
                expected = row.id + 1
                if not _tag_ok(self._key, row):
                    self._report(row, f"({_untagged(row)})")
                    continue
                first = originals.get(_content_key(row))
                if first is not None and first < row.id:
                    self._report(row, f"repeats row id {first} word for word (a copy)")
                    continue
                accepted.append(row)
            self._gaps = {k: v for k, v in self._gaps.items() if k[0] > floor}
            self._gaps_told = {k for k in self._gaps_told if k[0] > floor}
            if not accepted:
                return 0, head, False
            seq, prev = (head.seq, head.digest) if head else (0, "")
            seals = []
            for row in accepted:
                seq += 1
                prev = _digest(self._key, prev, row, seq)
                seals.append({"row_id": row.id, "new_seq": seq, "new_digest": prev})
            try:
                if not await _apply_seals(session, seals):  # another sealer got there first
                    await session.rollback()
                    return 0, head, False
                await session.commit()
            except IntegrityError:
                # Another instance extended the chain at the same time; it wins.
                await session.rollback()
                return 0, head, False
            more = not stopped and len(rows) == self._batch
            return len(accepted), Head(seq, prev), more

    async def _report_below(self, session: AsyncSession, floor: int) -> None:
        below = (
            await session.exec(
                select(AuditEvent).where(col(AuditEvent.seq).is_(None), col(AuditEvent.id) < floor)
                .order_by(col(AuditEvent.id)).limit(100)
            )
        ).all()
        for row in below:
            self._report(row, f"is unsealed below the sealed head (id {floor}): inserted or "
                              "un-sealed after the rows around it were sealed")


_SEAL = (
    update(AuditEvent.__table__)  # type: ignore[attr-defined]
    .where(AuditEvent.__table__.c.id == bindparam("row_id"),  # type: ignore[attr-defined]
           AuditEvent.__table__.c.seq.is_(None))  # type: ignore[attr-defined]
    .values(seq=bindparam("new_seq"), digest=bindparam("new_digest"))
)


async def _apply_seals(session: AsyncSession, seals: list[dict[str, Any]]) -> bool:
    """Seal the rows (each only while still unsealed); False unless every one was.
    One statement for the batch where the driver counts the rows an executemany
    changed (SQLite), else one per row."""
    conn = await session.connection()
    if conn.dialect.supports_sane_multi_rowcount:
        done = await conn.execute(_SEAL, seals)
        return done.rowcount == len(seals)
    for seal in seals:
        if (await conn.execute(_SEAL, seal)).rowcount != 1:
            return False
    return True


async def _first_of_each_content(session: AsyncSession, rows: Sequence[AuditEvent]) -> dict[str, int]:
    """For the rows' contents, the lowest id holding each (copies share ``at``)."""
    times = list({r.at for r in rows})
    first: dict[str, int] = {}
    for i in range(0, len(times), 200):
        found = await session.exec(select(AuditEvent).where(col(AuditEvent.at).in_(times[i:i + 200])))
        for other in found:
            k = _content_key(other)
            if other.id is not None and (k not in first or other.id < first[k]):
                first[k] = other.id
    return first


# --- verifying -----------------------------------------------------------------

Kind = Literal["tampered", "unverifiable", "stale"]


@dataclass(frozen=True)
class Problem:
    row_id: int | None
    text: str
    kind: Kind = "tampered"

    def __str__(self) -> str:
        return f"row id {self.row_id}: {self.text}" if self.row_id is not None else self.text


@dataclass
class VerifyResult:
    checked: int = 0
    unsealed: int = 0
    head: Head | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def tampered(self) -> bool:
        return any(p.kind == "tampered" for p in self.problems)

    @property
    def sealable(self) -> bool:
        """Nothing wrong but rows waiting too long to be sealed."""
        return all(p.kind == "stale" for p in self.problems)

    @property
    def bad_row_id(self) -> int | None:
        return self.problems[0].row_id if self.problems else None

    @property
    def reason(self) -> str | None:
        return self.problems[0].text if self.problems else None


async def verify(
    session_factory: SessionFactory, key: bytes, *, head_file: Path | None = None,
    heads: Sequence[Head] = (), stale_after: timedelta = STALE_AFTER, now: datetime | None = None,
) -> VerifyResult:
    """Check the whole log without changing it; problems come sorted by row id,
    so the first names the first edited, inserted or missing row.

    Checked: every sealed row against the chain (edits, deleted rows); the chain
    against each head on record (``head_file`` and ``heads``, e.g. from the
    shipped log: rows cut off the end, a rewritten chain), and that there is one
    when the chain is not empty; ids missing between rows; every unsealed row for
    its tag (forged or edited), for lying below the sealed head, for being a copy,
    and for waiting longer than ``stale_after``.
    """
    now = now or utcnow()
    result = VerifyResult()
    problems = result.problems
    on_file = await anyio.to_thread.run_sync(read_head_file, head_file) if head_file else None
    claims = sorted({h for h in (on_file.head if on_file else None, *heads) if h}, key=lambda h: h.seq)
    wanted = _by_seq(claims)

    async with session_factory() as session:
        gaps_tamper = _gaps_are_tampering(session)
        chain = _Chain(key)
        max_sealed_id = 0
        rows = await session.stream_scalars(
            select(AuditEvent).where(col(AuditEvent.seq).is_not(None)).order_by(col(AuditEvent.seq))
        )
        async for row in rows:
            problem = chain.feed(row)
            if problem and len(problems) < MAX_PROBLEMS:
                problems.append(Problem(row.id, problem))
            for claim in wanted.get(row.seq or 0, ()) if not problem else ():
                if not hmac.compare_digest(claim.digest, row.digest or ""):
                    problems.append(Problem(row.id, _rewritten_text(claim)))
            result.checked += 1
            max_sealed_id = max(max_sealed_id, row.id or 0)
        result.head = chain.head

        first_unsealed_above: int | None = None
        stale: list[AuditEvent] = []
        unsealed = await session.stream_scalars(
            select(AuditEvent).where(col(AuditEvent.seq).is_(None)).order_by(col(AuditEvent.id))
        )
        async for row in unsealed:
            result.unsealed += 1
            if len(problems) >= MAX_PROBLEMS:
                continue
            tagged = _tag_ok(key, row)
            if not tagged:
                problems.append(Problem(row.id, _untagged(row)))
            if (row.id or 0) < max_sealed_id:
                problems.append(Problem(row.id, f"unsealed below the sealed head (id {max_sealed_id}): "
                                                "inserted or un-sealed after the rows around it were sealed"))
            elif first_unsealed_above is None:
                first_unsealed_above = row.id
            if tagged and (now - (as_utc(row.at) or now)) > stale_after:
                stale.append(row)
        if stale:
            oldest = stale[0]
            problems.append(Problem(
                oldest.id, f"{len(stale)} row(s) written more than {_minutes(stale_after)} ago are not "
                           "sealed yet, the oldest this one: no server has sealed since (run "
                           "`rtc-server audit seal` or start the server), or the sealer refuses them",
                "stale"))

        await _find_missing_ids(session, problems, gaps_tamper, result.notes)
        await _find_copies(session, problems)

    for claim in claims:
        if claim.seq > chain.seq:
            text = _cut_off_text(result.head, claim)
            if first_unsealed_above is not None:
                text += f"; the first row after the chain is id {first_unsealed_above}"
            problems.append(Problem(first_unsealed_above, text))
            break
    if not claims and result.head is not None:
        where = f"{head_file} is missing" if head_file else "no head was given"
        problems.append(Problem(
            None, f"no head on record ({where}) although seq 1 to {result.head.seq} are sealed: rows cut off "
                  "the end cannot be seen. Compare with the last head shipped off this host: "
                  "rtc-server audit verify --head SEQ:DIGEST", "unverifiable"))
    if on_file is not None and on_file.adopted:
        seq, when = on_file.adopted
        result.notes.append(
            f"the head on record was adopted at seq {seq} on {when} because none was on record then; "
            f"rows cut off before that would not show: compare seq {seq} with the head shipped off this host")
    if result.unsealed and result.ok:
        result.notes.append(f"{result.unsealed} row(s) written but not sealed yet")
    problems.sort(key=lambda p: (p.row_id is None, p.row_id or 0))
    return result


def summarize(problems: Sequence[Problem]) -> list[str]:
    """One line per problem, rows in a run with the same problem on one line."""
    lines: list[str] = []
    run: list[Problem] = []

    def flush() -> None:
        if run:
            first, last = run[0], run[-1]
            span = _span(first.row_id or 0, last.row_id or 0)
            lines.append(f"row id {span}: {first.text}" if first.row_id is not None else first.text)
            run.clear()

    for p in problems:
        if run and (p.text != run[-1].text or p.row_id is None or run[-1].row_id is None
                    or p.row_id != run[-1].row_id + 1):
            flush()
        run.append(p)
    flush()
    return lines


def _span(first: int, last: int) -> str:
    return f"{first}" if last <= first else f"{first} to {last}"


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} minutes"


async def _find_missing_ids(
    session: AsyncSession, problems: list[Problem], gaps_tamper: bool, notes: list[str]
) -> None:
    expected = 1
    rolled_back = 0
    ids = await session.stream_scalars(select(AuditEvent.id).order_by(col(AuditEvent.id)))
    async for row_id in ids:
        if row_id > expected:
            if gaps_tamper and len(problems) < MAX_PROBLEMS:
                problems.append(Problem(expected, f"missing (id {_span(expected, row_id - 1)} deleted)"))
            else:
                rolled_back += row_id - expected
        expected = row_id + 1
    if rolled_back:
        notes.append(f"{rolled_back} id(s) absent between rows: on PostgreSQL a rolled-back "
                     "transaction leaves such a gap (a row deleted before it was sealed would too)")


async def _find_copies(session: AsyncSession, problems: list[Problem]) -> None:
    content = (AuditEvent.at, AuditEvent.actor_id, AuditEvent.actor_role, AuditEvent.patient_id,
               AuditEvent.action, AuditEvent.resource, AuditEvent.outcome, AuditEvent.request_id,
               AuditEvent.ip)
    groups = (
        await session.exec(
            select(*content).group_by(*content).having(func.count() > 1)  # type: ignore[call-overload]
        )
    ).all()
    for values in groups[:100]:
        same = [c.is_not_distinct_from(v) for c, v in zip(content, values, strict=True)]
        ids = (await session.exec(select(AuditEvent.id).where(*same).order_by(col(AuditEvent.id)))).all()
        problems.extend(Problem(i, f"repeats row id {ids[0]} word for word (a copy)") for i in ids[1:])
