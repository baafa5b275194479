"""The Dashboard and lab-results endpoints beside a bare Starlette JSON endpoint.

    .venv/bin/python bench/portal.py [--patients 10000] [--clients 32] [--seconds 8] [--repeat 3]
        [--cache DIR] [--only dashboard,labs,session] [--py-spy OUT.svg] [--postgres URL]

1. Loads a clinic into a fresh SQLite database (migrated as ``rtc-server migrate``
   does): ``--patients`` patients, each with a portal account, a primary provider
   (one of 50), two upcoming appointments and a year of labs: a monthly panel of
   8 tests (96 results a patient, all released; last month's are new, half of them
   opened). Bulk inserts with the standard ``sqlite3`` module, in one transaction.
   With ``--cache DIR`` the loaded SQLite file is kept in ``DIR``, keyed by the
   schema (a digest of the migration files) and the patient count, and copied
   for later runs instead of loading again.
2. Signs in ``--sessions`` of those patients (real sessions, as log-in makes them).
3. Starts two servers pinned to core 0 (``taskset``), both through
   ``rtc_server.cli._serve``, i.e. the very ``uvicorn.run`` options of
   ``rtc-server serve`` (httptools, uvloop, no per-message deflate), logging at
   WARNING: rtc_server itself, and a bare Starlette app whose one route returns a
   JSON body copied from a real dashboard answer (same size, serialised per request).
4. From this process, pinned to core 1, keeps ``--clients`` keep-alive HTTP/1.1
   connections busy (closed loop: each sends its next request when the answer
   arrives), each request with a different signed-in patient's cookie, for
   ``--seconds`` after a warm-up; bare, dashboard and labs in turn, ``--repeat``
   rounds. Prints requests per second (median of the rounds), p50 and p99 latency
   (of the median round), the server's CPU use, and each endpoint's rate as a
   fraction of the bare one (goal: dashboard >= 0.5). ``GET /api/v1/auth/session``
   (the session check and nothing else) is measured too, as the floor of any
   signed-in endpoint on this stack.

Every dashboard and labs request does what it does in production: loads the
session, checks the patient's results are classified, reads, and answers only
once its audit row is committed (through the instance's group-commit audit
writer, ``rtc_server.audit_writer``; the audit sealer runs too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import ServerProcess, free_port, pin_to

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
PYTHON = sys.executable
#: The server secret (it tags audit rows): one per run, shared with the server processes.
SECRET = os.environ.setdefault("RTC_BENCH_SECRET", secrets.token_urlsafe(48))
RECORD_ROUTES = (
    "rtc_server.portal.records.routes", "rtc_server.portal.labs.routes",
    "rtc_server.portal.dashboard.routes", "rtc_server.console.results", "rtc_server.console.charts",
)
#: The CSRF cookie a signed-in browser carries (else every answer would mint and set a new one).
CSRF = secrets.token_urlsafe(32)
PRACTITIONERS = 50
MONTHS = 12
#: (LOINC, name, unit, low, high, typical, spread)
PANEL = [
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 5.9, 0.9),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70.0, 99.0, 104.0, 18.0),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.2, 0.95, 0.2),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 4.3, 0.4),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 15.5, 13.6, 1.2),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5, 11.0, 7.2, 1.6),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", None, 200.0, 192.0, 28.0),
    ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", None, 150.0, 140.0, 40.0),
]


# --- loading the clinic ---------------------------------------------------------------------

COLUMNS = {
    "practitioner": ("id", "fhir_id", "placeholder", "identifiers", "prefix", "given_name", "family_name",
                     "suffix", "active"),
    "patient": ("id", "fhir_id", "identifiers", "given_name", "family_name", "given_norm", "family_norm",
                "birth_date", "primary_practitioner_id"),
    "user_account": ("id", "username", "username_norm", "password_hash", "role", "status", "patient_id",
                     "display_name", "email", "mfa_enabled", "notification_prefs", "failed_logins",
                     "created_at"),
    "appointment": ("fhir_id", "patient_id", "practitioner_id", "start", "end", "status", "reason", "kind",
                    "created_at"),
    "observation": ("id", "fhir_id", "patient_id", "status", "category", "code_system", "code", "display",
                    "value_quantity", "value_unit", "reference_low", "reference_high", "components",
                    "effective_at", "issued_at"),
    "lab_release": ("observation_id", "patient_id", "state", "released_at", "announced", "opened_at"),
}
CHUNK = 500  # patients per batch of rows


def clinic_rows(patients: int, now: datetime) -> Iterator[tuple[str, list[tuple[object, ...]]]]:
    """The clinic (see the module docstring) as (table, rows) batches of Python values."""
    rng = random.Random(7)
    yield "practitioner", [
        (i, f"bench-practitioner-{i}", False, "[]", "Dr.", f"Given{i}", f"Family{i}", "MD", True)
        for i in range(1, PRACTITIONERS + 1)]
    obs_id = 0
    for first in range(1, patients + 1, CHUNK):
        ids = range(first, min(first + CHUNK, patients + 1))
        yield "patient", [(p, f"bench-patient-{p}", "[]", f"Pat{p}", f"Ient{p}", f"pat{p}", f"ient{p}",
                           date(1950, 1, 1) + timedelta(days=p % 20000), 1 + p % PRACTITIONERS) for p in ids]
        yield "user_account", [
            (p, f"patient{p}", f"patient{p}", "!", "patient", "active", p, f"Pat{p} Ient{p}",
             f"patient{p}@example.org", False, "{}", 0, now) for p in ids]
        appointments, observations, releases = [], [], []
        for p in ids:
            doctor, turn = 1 + p % PRACTITIONERS, p // PRACTITIONERS
            for n, days in enumerate((1, 31)):
                start = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=days, hours=2 * turn)
                appointments.append((f"bench-appt-{p}-{n}", p, doctor, start, start + timedelta(minutes=30),
                                     "booked", "Check-up", "video" if (p + n) % 3 == 0 else "in_person", now))
            for month in range(MONTHS):
                taken = now - timedelta(days=30 * (MONTHS - 1 - month) + 3 + p % 5, hours=p % 9)
                latest = month == MONTHS - 1
                for code, name, unit, low, high, typical, spread in PANEL:
                    obs_id += 1
                    observations.append((
                        obs_id, f"bench-obs-{obs_id}", p, "final", "laboratory", "http://loinc.org", code,
                        name,
                        round(rng.gauss(typical, spread), 2), unit, low, high, "[]", taken,
                        taken + timedelta(hours=20)))
                    releases.append((obs_id, p, "released", taken + timedelta(days=2), latest,
                                     now if latest and p % 2 else None))
        yield "appointment", appointments
        yield "observation", observations
        yield "lab_release", releases


def _sqlite_value(value: object) -> object:
    """How SQLAlchemy stores the value in SQLite (aware times as naive UTC text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def load_sqlite(db_path: Path, patients: int, now: datetime) -> dict[str, int]:
    """Bulk-load the clinic in one transaction; row counts by table."""
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA foreign_keys=OFF")
    with con:
        for table, rows in clinic_rows(patients, now):
            cols = COLUMNS[table]
            names = ", ".join(f'"{c}"' for c in cols)
            con.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(cols))})",
                            [tuple(_sqlite_value(v) for v in row) for row in rows])
    con.execute("ANALYZE")
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COLUMNS}
    con.close()
    return counts


async def load_postgres(dsn: str, patients: int, now: datetime) -> dict[str, int]:
    """Bulk-load the clinic with COPY in one transaction; row counts by table."""
    import asyncpg

    con = await asyncpg.connect(dsn)
    try:
        async with con.transaction():
            for table, rows in clinic_rows(patients, now):
                await con.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
        for table in ("practitioner", "patient", "user_account", "observation"):
            await con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT max(id) FROM {table}))")
        await con.execute("ANALYZE")
        return {t: await con.fetchval(f"SELECT count(*) FROM {t}") for t in COLUMNS}
    finally:
        await con.close()


def settings_for(data_dir: Path, port: int) -> object:
    """The servers' settings: SQLite in ``data_dir``, or the PostgreSQL database of
    ``RTC_BENCH_DATABASE_URL`` (set by ``--postgres``; the server processes inherit it)."""
    from rtc_server.config import load_settings

    return load_settings(data_dir=data_dir, base_url=f"http://127.0.0.1:{port}", secret_key=SECRET,
                         log_level="WARNING", auto_migrate=False,
                         database_url=os.environ.get("RTC_BENCH_DATABASE_URL") or None)


def copy_cached(cached: Path, db_file: Path) -> dict[str, int]:
    """Copy the cached clinic to ``db_file``; its row counts by table."""
    db_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(cached, db_file)
    con = sqlite3.connect(db_file)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COLUMNS}
    con.close()
    return counts


def store_cached(db_file: Path, cached: Path) -> None:
    """Keep ``db_file`` as ``cached``, dropping clinics of other schemas (400 MB each)."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    for old in cached.parent.glob(f"clinic-*-{cached.stem.rsplit('-', 1)[1]}.db"):
        old.unlink()
    shutil.copyfile(db_file, cached)


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` until it gets SIGINT (then it writes ``out``: a flame
    graph, or collapsed stacks when ``out`` ends in ``.txt``)."""
    form = ["--format", "raw"] if out.suffix == ".txt" else []
    return subprocess.Popen([str(Path(PYTHON).parent / "py-spy"), "record", "-o", str(out), "--pid", str(pid),
                             "--rate", "250", "--nonblocking", *form],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def schema_key() -> str:
    """A digest of the migration files: a cached clinic is reused only for the same schema."""
    import hashlib

    from rtc_server.migrate import MIGRATIONS

    digest = hashlib.sha256()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


async def prepare(
    data_dir: Path, port: int, patients: int, sessions: int, cache: Path | None = None,
) -> tuple[list[str], dict[str, int], float]:
    """Migrate, bulk-load (or copy the cached clinic), sign ``sessions`` patients in:
    their tokens, the row counts, load seconds. The appointments of a cached clinic
    were made relative to the day it was loaded: a clinic older than a day is reloaded."""
    from sqlmodel import col, select

    from rtc_server.auth.actor import NO_REQUEST
    from rtc_server.auth.models import SessionStage, User
    from rtc_server.auth.sessions import create_session
    from rtc_server.db import create_engine, make_session_factory
    from rtc_server.migrate import upgrade

    settings = settings_for(data_dir, port)
    url = os.environ.get("RTC_BENCH_DATABASE_URL")
    db_file = data_dir / "rtc_server.db"
    cached = cache / f"clinic-{schema_key()}-{patients}.db" if cache is not None and not url else None
    started = time.perf_counter()
    if cached is not None and cached.exists():
        counts = await asyncio.to_thread(copy_cached, cached, db_file)
    else:
        engine = create_engine(settings)  # type: ignore[arg-type]
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        started = time.perf_counter()
        if url:
            counts = await load_postgres(url.replace("+asyncpg", ""), patients, datetime.now(UTC))
        else:
            counts = await asyncio.to_thread(load_sqlite, db_file, patients, datetime.now(UTC))
        if cached is not None:
            await asyncio.to_thread(store_cached, db_file, cached)
    loaded = time.perf_counter() - started
    engine = create_engine(settings)  # type: ignore[arg-type]
    try:
        step = max(1, patients // sessions)
        wanted = list(range(1, patients + 1, step))[:sessions]
        async with make_session_factory(engine)() as db:
            users = (await db.exec(select(User).where(col(User.id).in_(wanted)))).all()
            tokens = [await create_session(db, u, SessionStage.full, NO_REQUEST, settings) for u in users]  # type: ignore[arg-type]
            await db.commit()
    finally:
        await engine.dispose()
    return tokens, counts, loaded


# --- the servers ------------------------------------------------------------------------------

def _logging() -> None:
    import logging

    from rtc_server.cli import install_log_filters

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_filters()


def serve_app(data_dir: Path, port: int) -> None:
    """rtc_server as ``rtc-server serve`` runs it (its records routes listed if app.py does not yet)."""
    import rtc_server.app
    from rtc_server.cli import _serve

    _logging()
    listed = rtc_server.app.FEATURE_ROUTE_MODULES
    rtc_server.app.FEATURE_ROUTE_MODULES = (*listed, *(m for m in RECORD_ROUTES if m not in listed))
    _serve(settings_for(data_dir, port), "127.0.0.1", port)  # type: ignore[arg-type]


def serve_bare(data_dir: Path, port: int, body: Path) -> None:
    """One Starlette route returning ``body`` (parsed once, serialised per request), through
    the same ``_serve`` (same uvicorn options)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    import rtc_server.app
    from rtc_server.cli import _serve

    _logging()
    content = json.loads(body.read_text(encoding="utf-8"))

    async def bare(_request: Request) -> JSONResponse:
        return JSONResponse(content)

    app = Starlette(routes=[Route("/api/v1/bare", bare)])
    rtc_server.app.create_app = lambda _settings, **_kw: app  # type: ignore[assignment]
    _serve(settings_for(data_dir, port), "127.0.0.1", port)  # type: ignore[arg-type]


# --- the load -----------------------------------------------------------------------------------

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass
class Run:
    name: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


class _Client(asyncio.Protocol):
    """One keep-alive connection sending its requests in turn (closed loop)."""

    def __init__(self, requests: Sequence[bytes], run: Run, window: list[float],
                 done: asyncio.Future[None]) -> None:
        self.requests, self.run, self.window, self.done = requests, run, window, done
        self.buf = bytearray()
        self.need: int | None = None
        self.status = b""
        self.i = 0
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.requests[self.i % len(self.requests)])
        self.i += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                found = _LENGTH.search(self.buf, 0, end + 2)
                self.need = end + 4 + (int(found.group(1)) if found else 0)
                self.status = bytes(self.buf[9:12])
            if len(self.buf) < self.need:
                return
            del self.buf[:self.need]
            self.need = None
            now = time.perf_counter()
            start, stop = self.window
            if start <= now <= stop:
                if self.status == b"200":
                    self.run.latencies.append(now - self.sent_at)
                else:
                    self.run.errors += 1
            if now >= stop:
                if not self.done.done():
                    self.done.set_result(None)
                return
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed by the server"))


async def load(name: str, port: int, path: str, tokens: Sequence[str], clients: int, seconds: float,
               warm_up: float, server: ServerProcess) -> Run:
    """``clients`` connections on ``path`` for ``warm_up`` + ``seconds`` seconds."""
    loop = asyncio.get_running_loop()
    run = Run(name, seconds)
    now = time.perf_counter()
    window = [now + warm_up, now + warm_up + seconds]
    futures = []
    for c in range(clients):
        mine = tokens[c::clients] or tokens
        requests = [(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
                     f"Cookie: rtc_session={token}; rtc_csrf={CSRF}\r\n\r\n").encode() for token in mine]
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(lambda r=requests, d=done: _Client(r, run, window, d), "127.0.0.1", port)
        futures.append(done)
    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    cpu = server.cpu_seconds()
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    run.server_cpu = (server.cpu_seconds() - cpu) / seconds
    await asyncio.gather(*futures)
    return run


async def fetch(port: int, path: str, token: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: rtc_session={token}\r\n"
                 "Connection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{path}: {head.splitlines()[0].decode()}")
    return body


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=1_000,
                        help="signed-in patients the clients rotate through")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warm-up", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="keep the loaded SQLite clinic in DIR (by schema and size) and reuse it")
    parser.add_argument("--only", default="dashboard,labs,session",
                        help="which of dashboard, labs, session to measure (the bare endpoint always)")
    parser.add_argument("--py-spy", metavar="OUT", type=Path,
                        help="record the rtc_server process with py-spy during the load (flame graph)")
    parser.add_argument("--postgres", metavar="URL", help="run on a new database of this PostgreSQL server "
                        "(e.g. postgresql://postgres@127.0.0.1:5432/test) instead of SQLite; the database "
                        "server itself is not pinned")
    args = parser.parse_args()
    database = None
    if args.postgres:
        import asyncpg

        database = f"rtc_bench_{secrets.token_hex(6)}"
        admin = args.postgres.replace("+asyncpg", "")
        con = await asyncpg.connect(admin)
        await con.execute(f'CREATE DATABASE "{database}"')
        await con.close()
        os.environ["RTC_BENCH_DATABASE_URL"] = admin.rsplit("/", 1)[0] + "/" + database
    try:
        return await _bench(args)
    finally:
        if database is not None:
            con = await asyncpg.connect(admin)
            await con.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await con.close()


async def _bench(args: argparse.Namespace) -> int:

    work = Path(tempfile.mkdtemp(prefix="rtc-bench-portal-"))
    data_dir = work / "data"
    app_port, bare_port = free_port(), free_port()
    print(f"loading {args.patients:,} patients with a year of labs ...", flush=True)
    cache = args.cache
    if cache is not None:  # a day-old clinic has its appointments in the past
        for old in cache.glob("clinic-*.db"):
            if time.time() - old.stat().st_mtime > 20 * 3600:
                old.unlink()
    tokens, counts, loaded = await prepare(data_dir, app_port, args.patients, args.sessions, cache)
    print(f"loaded in {loaded:.1f} s: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()), flush=True)

    pin_to(args.load_core)
    me = [PYTHON, str(HERE)]
    with ServerProcess([*me, "serve-app", str(data_dir), str(app_port)], port=app_port, core=args.server_core,
                       log=work / "app.log") as app:
        app.wait_listening(60)
        sample = await fetch(app_port, "/api/v1/dashboard", tokens[0])
        labs_sample = await fetch(app_port, "/api/v1/labs", tokens[0])
        body = work / "body.json"
        body.write_bytes(sample)
        with ServerProcess([*me, "serve-bare", str(data_dir), str(bare_port), str(body)], port=bare_port,
                           core=args.server_core, log=work / "bare.log") as bare:
            bare.wait_listening(60)
            wanted = set(args.only.split(","))
            targets = [("bare Starlette JSON", bare_port, "/api/v1/bare", bare)]
            targets += [t for key, t in (
                ("dashboard", ("GET /api/v1/dashboard", app_port, "/api/v1/dashboard", app)),
                ("labs", ("GET /api/v1/labs", app_port, "/api/v1/labs", app)),
                # Diagnostic: the floor of any signed-in endpoint of this stack.
                ("session", ("GET /api/v1/auth/session", app_port, "/api/v1/auth/session", app)),
            ) if key in wanted]
            spy = start_py_spy(app.proc.pid, args.py_spy) if args.py_spy is not None else None
            runs: dict[str, list[Run]] = {t[0]: [] for t in targets}
            for round_ in range(args.repeat):
                for name, port, path, server in targets:
                    run = await load(name, port, path, tokens, args.clients, args.seconds, args.warm_up,
                                     server)
                    runs[name].append(run)
                    print(f"  round {round_ + 1} {name:24} {run.rate:8.0f} req/s  p50 {run.pct(0.5):6.1f} ms"
                          f"  p99 {run.pct(0.99):6.1f} ms  server CPU {run.server_cpu:4.0%}"
                          f"{f'  errors {run.errors}' if run.errors else ''}", flush=True)
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes its flame graph
                spy.wait(60)

    backend = "PostgreSQL (database server not pinned)" if args.postgres else "SQLite"
    print(f"\n{backend}; {args.clients} clients, {len(tokens)} signed-in patients, "
          f"server on core {args.server_core}, "
          f"load on core {args.load_core}; median of {args.repeat} rounds of {args.seconds:.0f} s")
    print(f"response sizes: dashboard {len(sample):,} B (the bare endpoint returns the same JSON), "
          f"labs {len(labs_sample):,} B")
    print(f"{'endpoint':26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'server CPU':>11} {'vs bare':>8}")
    bare_rate = statistics.median(r.rate for r in runs[targets[0][0]])
    for name, *_ in targets:
        rates = [r.rate for r in runs[name]]
        middle = sorted(runs[name], key=lambda r: r.rate)[len(rates) // 2]
        print(f"{name:26} {statistics.median(rates):8.0f} {middle.pct(0.5):8.1f} {middle.pct(0.99):8.1f} "
              f"{middle.server_cpu:10.0%} {statistics.median(rates) / bare_rate:8.2f}")
    if "GET /api/v1/dashboard" in runs:
        dash = statistics.median(r.rate for r in runs["GET /api/v1/dashboard"]) / bare_rate
        verdict = "met" if dash >= 0.5 else "NOT met"
        print(f"\ngoal: dashboard at least 0.5 of the bare endpoint's rate: {verdict} ({dash:.2f})")
    if args.keep:
        print(f"(work directory kept: {work})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-app":
        serve_app(Path(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "serve-bare":
        serve_bare(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    else:
        try:
            import uvloop  # the load generator needs the faster loop more than anyone
        except ImportError:
            sys.exit(asyncio.run(main()))
        sys.exit(uvloop.run(main()))
