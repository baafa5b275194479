"""Secure messaging under load, beside the bare relays, in one run.

    .venv/bin/python bench/chat.py                       # the full run (about 25 minutes)
    .venv/bin/python bench/chat.py --seconds 5 --repeats 1 --rates 5000,10000
    .venv/bin/python bench/chat.py --only rtc-sqlite,starlette
    .venv/bin/python bench/chat.py serve --port 8000     # rtc_server with messaging (see below)

The pair workload (bench/loadgen.py): 1,000 clients in 500 two-person
conversations, messages offered at a fixed total rate (open loop) for
``--seconds`` at each of ``--rates``, each rate ``--repeats`` times, the
median reported. Every server is pinned to core 0 and the load generator to
core 1 (``taskset``/``sched_setaffinity``); the two-instance run pins both
instances to core 0 (one core for the server side, like the others).

Servers, each fresh, all with permessage-deflate off:
- ``websockets``: the bare websockets room relay (bench/relays.py);
- ``starlette``: the same relay as a Starlette endpoint under uvicorn;
- ``rtc-sqlite``, ``rtc-postgres``: rtc_server, 1,000 signed-in patients and
  providers, one conversation per pair, every message checked (session,
  membership, size, rate), stored before its ack (group commit), delivered
  by the relay; on SQLite, then on PostgreSQL;
- ``rtc-2x``: two rtc_server instances on PostgreSQL and one Redis, each
  pair split across them (patient on one, provider on the other).

Printed per server and rate: delivered msg/s, p50/p99 latency (send to
partner's receipt), lost, duplicated, server CPU (% of one core), KiB per
idle client (the RSS grown by the second 500 connected, following clients, once
the first 500 have warmed what a server keeps only once: caches, pools),
and the ratios to the bare relays (p99 and delivered rate).

``serve`` runs rtc_server as ``rtc-server serve`` does (same uvicorn
options); settings from the ``RTC_*`` environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SECRET = secrets.token_urlsafe(48)
PG_ADMIN = os.environ.get("RTC_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ORIGIN = "http://bench.local"
SERVER_CORE = 0
LOAD_CORE = 1
LOG_LEVEL = os.environ.get("RTC_BENCH_LOG_LEVEL", "WARNING")
#: ``--profile``: run each rtc_server instance under cProfile (figures are then not comparable).
PROFILE = False


# --- serve -------------------------------------------------------------------------------

def serve(host: str, port: int, profile: str | None = None) -> None:
    """rtc_server with messaging, as ``rtc-server serve`` runs it (profiled into
    ``profile`` when given: the stats are written when the app shuts down)."""
    import uvicorn

    from rtc_server.app import create_app
    from rtc_server.cli import WS_MAX_BYTES, _migrate, _setup_logging
    from rtc_server.config import load_settings

    settings = load_settings()
    _setup_logging(settings.log_level)
    if settings.auto_migrate:
        asyncio.run(_migrate(settings))
    app = create_app(settings)
    if profile:
        _profiled(app, profile)
    uvicorn.run(
        app, host=host, port=port, ws="websockets-sansio",
        ws_max_size=WS_MAX_BYTES, ws_per_message_deflate=False, log_level="warning", log_config=None,
    )


def _profiled(app: Any, path: str) -> None:
    """Profile the process (CPU time) from SIGUSR1 to SIGUSR2, then write the
    stats to ``path``: the benchmark brackets the load with them."""
    import contextlib
    import cProfile
    import signal

    profiler = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
    original = app.router.lifespan_context

    def stop() -> None:
        profiler.disable()
        profiler.dump_stats(path)

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> Any:
        async with original(application) as state:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
            loop.add_signal_handler(signal.SIGUSR2, stop)
            yield state

    app.router.lifespan_context = lifespan


def chat_in_app() -> bool:
    """Whether ``rtc-server serve`` carries messaging already (app.py lists it)."""
    import rtc_server.app

    return "rtc_server.chat.routes" in getattr(rtc_server.app, "FEATURE_ROUTE_MODULES", ())


def server_command(port: int, profile: Path | None = None) -> list[str]:
    """How to start one rtc_server instance (under cProfile into ``profile``, if given)."""
    if profile is not None:
        return [PYTHON, str(ROOT / "bench/chat.py"), "serve", "--host", "127.0.0.1", "--port", str(port),
                "--profile", str(profile)]
    if chat_in_app():
        return [str(ROOT / ".venv/bin/rtc-server"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [PYTHON, str(ROOT / "bench/chat.py"), "serve", "--host", "127.0.0.1", "--port", str(port)]


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        parser = argparse.ArgumentParser(prog="bench/chat.py serve", description=serve.__doc__)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--profile", help="write cProfile stats here at shutdown")
        args = parser.parse_args(sys.argv[2:])
        serve(args.host, args.port, args.profile)
    else:
        run_bench(sys.argv[1:])


# --- the benchmark ---------------------------------------------------------------------

@dataclass
class Setup:
    """One server under test: how to start it and reach it."""

    name: str
    key: str
    commands: list[tuple[list[str], dict[str, str], int]]  # (command, env, port)
    url: Any  # client index -> ws URL
    headers: Any = field(default=lambda _i: {})
    origin: str | None = None
    ready: str | None = None
    conversation: Any = None  # client index -> conversation id (rtc_server)
    cleanup: list[Any] = field(default_factory=list)


@dataclass
class Row:
    name: str
    rate: float
    delivered: float
    p50: float
    p99: float
    lost: int
    duplicated: int
    cpu: float
    kib: float


async def make_clinic(
    data_dir: Path, pairs: int, base_url: str, database_url: str | None,
) -> tuple[list[str], list[int]]:
    """``pairs`` patients, each with their own provider and one conversation,
    every account signed in (inserted directly: hashing 1,000 passwords would
    take minutes). Client ``2k`` is patient k, ``2k+1`` provider k. The
    session tokens, and each client's conversation id."""
    from sqlalchemy import insert

    from rtc_server.auth.actor import NO_REQUEST
    from rtc_server.auth.models import Role, SessionStage, User, UserStatus
    from rtc_server.auth.sessions import create_session
    from rtc_server.chat.models import Category, Conversation, Member
    from rtc_server.config import load_settings
    from rtc_server.db import create_engine, make_session_factory, utcnow
    from rtc_server.migrate import upgrade
    from rtc_server.records.models import Patient, Practitioner

    settings = load_settings(data_dir=data_dir, base_url=base_url, database_url=database_url,
                             secret_key=SECRET)
    engine = create_engine(settings)
    await upgrade(engine)
    tokens: list[str] = []
    convs: list[int] = []
    now = utcnow()
    try:
        async with make_session_factory(engine)() as db:
            doctors = [Practitioner(given_name=f"Doc{k}", family_name="Bench") for k in range(pairs)]
            db.add_all(doctors)
            await db.flush()
            patients = [Patient(given_name=f"Pat{k}", family_name="Bench", given_norm=f"pat{k}",
                                family_norm="bench", birth_date=now.date(),
                                primary_practitioner_id=doctors[k].id) for k in range(pairs)]
            db.add_all(patients)
            await db.flush()
            users = []
            for k in range(pairs):
                users.append(User(username=f"pat{k}", username_norm=f"pat{k}", password_hash="!",
                                  role=Role.patient, status=UserStatus.active, created_at=now,
                                  patient_id=patients[k].id))
                users.append(User(username=f"doc{k}", username_norm=f"doc{k}", password_hash="!",
                                  role=Role.provider, status=UserStatus.active, created_at=now,
                                  practitioner_id=doctors[k].id))
            db.add_all(users)
            await db.flush()
            conversations = [Conversation(patient_id=patients[k].id, provider_id=doctors[k].id,  # type: ignore[arg-type]
                                          routed_to_id=doctors[k].id, category=Category.question,
                                          subject="Bench", created_at=now) for k in range(pairs)]
            db.add_all(conversations)
            await db.flush()
            await db.exec(insert(Member.__table__), params=[  # type: ignore[call-overload,arg-type]
                {"conversation_id": conversations[i // 2].id, "user_id": u.id, "last_read_seq": 0,
                 "last_delivered_seq": 0, "archived": False, "joined_at": now}
                for i, u in enumerate(users)])
            for i, user in enumerate(users):
                tokens.append(await create_session(db, user, SessionStage.full, NO_REQUEST, settings))
                convs.append(conversations[i // 2].id)  # type: ignore[arg-type]
            await db.commit()
    finally:
        await engine.dispose()
    return tokens, convs


def rtc_env(data_dir: Path, port: int, database_url: str | None, redis_url: str | None) -> dict[str, str]:
    return {
        "RTC_DATA_DIR": str(data_dir), "RTC_BASE_URL": f"http://127.0.0.1:{port}",
        "RTC_ALLOWED_ORIGINS": ORIGIN, "RTC_SECRET_KEY": SECRET, "RTC_DATABASE_URL": database_url or "",
        "RTC_REDIS_URL": redis_url or "", "RTC_WS_MAX_TOTAL": "100000", "RTC_LOG_LEVEL": LOG_LEVEL,
        "RTC_AUTO_MIGRATE": "false", "RTC_SMTP_URL": "",
        # The benchmark measures the machinery, not the per-person limit (2 a second by default).
        "RTC_CHAT_MESSAGES_PER_SECOND": "100000", "RTC_CHAT_BURST": "100000",
    }


async def rtc_setup(key: str, name: str, work: Path, clients: int, ports: list[int],
                    database_url: str | None, redis_url: str | None) -> Setup:
    data = work / key
    tokens, convs = await make_clinic(data, clients // 2, f"http://127.0.0.1:{ports[0]}", database_url)
    profiles = [work / f"{key}-{n}.prof" if PROFILE else None for n in range(len(ports))]
    commands = [(server_command(port, profiles[n]), rtc_env(data / f"i{n}", port, database_url or
                                               f"sqlite:///{data / 'rtc_server.db'}", redis_url), port)
                for n, port in enumerate(ports)]
    urls = [f"ws://127.0.0.1:{port}/ws/v1/events" for port in ports]
    return Setup(name=name, key=key, commands=commands, url=lambda i: urls[i % len(urls)],
                 headers=lambda i: {"Cookie": f"rtc_session={tokens[i]}"}, origin=ORIGIN,
                 ready='{"type":"ready"}', conversation=lambda i: convs[i])


def relay_setup(kind: str, port: int) -> Setup:
    name = {"websockets": "bare websockets relay", "starlette": "bare Starlette relay"}[kind]
    return Setup(name=name, key=kind, commands=[([PYTHON, str(ROOT / "bench/relays.py"), kind, "--port",
                                                   str(port)], {}, port)],
                 url=lambda i: f"ws://127.0.0.1:{port}/r/{i // 2}")


def chat_target(setup: Setup, run: int) -> Any:
    """The load generator's view of rtc_server: ``send`` frames out, ``message`` frames in."""
    from loadgen import Target

    def message(sender: int, _to: int, seq: int, sent_ns: int) -> str:
        return json.dumps({"type": "send", "conversation_id": setup.conversation(sender),
                           "client_id": f"r{run}-{sender}-{seq}",
                           "body": f"{run} {sender} {seq} {sent_ns}"})

    def parse(text: str) -> tuple[int, int, int] | None:
        if not text.startswith('{"type":"message"'):
            return None  # acks, unread notices
        tag, sender, seq, sent = json.loads(text)["body"].split()
        if int(tag) != run:
            return None  # late from an earlier run: counted lost there, not here
        return int(sender), int(seq), int(sent)

    return Target(name=setup.name, url=setup.url, headers=setup.headers, origin=setup.origin,
                  ready_frame=setup.ready, message=message, parse=parse)


async def follow(clients: list[Any], setup: Setup, start: int = 0) -> None:
    """Each rtc_server client (numbered from ``start``) opens its conversation
    (``resume``) and waits for ``live``."""
    loop = asyncio.get_running_loop()
    waiting = []
    for i, client in enumerate(clients, start):
        fut: asyncio.Future[None] = loop.create_future()

        def on_text(text: str, fut: asyncio.Future[None] = fut) -> None:
            if fut.done():
                return
            if text.startswith('{"type":"live"'):
                fut.set_result(None)
            elif text.startswith('{"type":"error"'):
                fut.set_exception(RuntimeError(f"resume refused: {text[:200]}"))

        client.on_text = on_text
        client.send_text(json.dumps({"type": "resume", "conversation_id": setup.conversation(i),
                                     "since": 0}))
        waiting.append(fut)
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*waiting), 120)
    for client in clients:
        client.on_text = None


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


async def bench_one(setup: Setup, rates: list[float], seconds: float, repeats: int, clients: int,
                    work: Path) -> list[Row]:
    from loadgen import ServerProcess, Target, close_clients, open_clients, run_pairs

    procs = [ServerProcess(cmd, port=port, core=SERVER_CORE, env=env, log=work / f"{setup.key}-{n}.log")
             for n, (cmd, env, port) in enumerate(setup.commands)]
    rows: list[Row] = []
    try:
        for proc in procs:
            proc.wait_listening(60)
        base = Target(name=setup.name, url=setup.url, headers=setup.headers, origin=setup.origin,
                      ready_frame=setup.ready)
        await asyncio.sleep(1.0)
        # KiB per idle client is the cost of the second half of the clients: by then
        # the first half has warmed what every server keeps once, however many
        # clients there are (caches, pools, the first conversations' compiled
        # statements), which the bare relays do not have.
        half = clients // 2
        conns = await open_clients(base, half)
        if setup.conversation is not None:
            await follow(conns, setup)
        await asyncio.sleep(3.0)  # audit sealing of the openings, settling
        before = sum(p.rss_kib() for p in procs)
        more = await open_clients(base, clients - half, start=half)
        if setup.conversation is not None:
            await follow(more, setup, start=half)
        conns += more
        await asyncio.sleep(3.0)
        kib = (sum(p.rss_kib() for p in procs) - before) / (clients - half)
        run = 0
        for rate in rates:
            results = []
            for _ in range(repeats):
                run += 1
                target = chat_target(setup, run) if setup.conversation is not None else base
                if PROFILE:
                    for p in procs:
                        p.proc.send_signal(signal.SIGUSR1)
                result = await run_pairs(target, conns, rate=rate, seconds=seconds,
                                         server_cpu=lambda: sum(p.cpu_seconds() for p in procs))
                if PROFILE:
                    for p in procs:
                        p.proc.send_signal(signal.SIGUSR2)
                results.append(result)
                await asyncio.sleep(1.0)
            rows.append(Row(
                name=setup.name, rate=rate, delivered=median([r.rate for r in results]),
                p50=median([r.percentile(50) for r in results]),
                p99=median([r.percentile(99) for r in results]),
                lost=int(median([r.lost for r in results])),
                duplicated=int(median([r.duplicated for r in results])),
                cpu=median([100 * r.cpu_share for r in results]), kib=kib))
            print(_line(rows[-1]), flush=True)
        await close_clients(conns)
    finally:
        for proc in procs:
            proc.stop()
    return rows


def _line(r: Row, ref: Row | None = None) -> str:
    ratio = ""
    if ref is not None and ref.p99 > 0:
        ratio = f"  p99 x{r.p99 / ref.p99:5.2f}  rate x{r.delivered / ref.delivered:4.2f}"
    return (f"{r.name:34} {r.rate:>7.0f} {r.delivered:>10.0f} {r.p50:>8.1f} {r.p99:>8.1f} {r.lost:>7} "
            f"{r.duplicated:>5} {r.cpu:>6.0f}% {r.kib:>7.1f}{ratio}")


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A private Redis on the server's core (the server side of the two-instance run)."""
    return subprocess.Popen(
        ["taskset", "-c", str(SERVER_CORE), "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def postgres_database() -> str | None:
    import asyncpg

    name = f"rtc_bench_{uuid.uuid4().hex[:10]}"
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"(PostgreSQL unavailable: {type(exc).__name__}; its rows are skipped)")
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def drop_database(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


async def _bench(args: argparse.Namespace) -> None:
    from loadgen import free_port, pin_to

    pin_to(LOAD_CORE)
    rates = [float(r) for r in args.rates.split(",")]
    only = set(args.only.split(",")) if args.only else None
    work = Path(tempfile.mkdtemp(prefix="rtc-chat-bench-"))

    def wanted(key: str) -> bool:
        return only is None or key in only

    setups: list[Setup] = []
    databases: list[str] = []
    redis: subprocess.Popen[bytes] | None = None
    try:
        for kind in ("websockets", "starlette"):
            if wanted(kind):
                setups.append(relay_setup(kind, free_port()))
        if wanted("rtc-sqlite"):
            setups.append(await rtc_setup("rtc-sqlite", "rtc_server, SQLite", work, args.clients,
                                          [free_port()], None, None))
        if wanted("rtc-postgres") or wanted("rtc-2x"):
            for key in ("rtc-postgres", "rtc-2x"):
                if not wanted(key):
                    continue
                url = await postgres_database()
                if url is None:
                    continue
                databases.append(url)
                db_url = "postgresql+asyncpg://" + url.split("://", 1)[1]
                if key == "rtc-postgres":
                    setups.append(await rtc_setup(key, "rtc_server, PostgreSQL", work, args.clients,
                                                  [free_port()], db_url, None))
                else:
                    redis_port = free_port()
                    redis = start_redis(redis_port)
                    setups.append(await rtc_setup(key, "rtc_server, PostgreSQL, 2 instances", work,
                                                  args.clients, [free_port(), free_port()], db_url,
                                                  f"redis://127.0.0.1:{redis_port}/0"))
        print(f"chat pair workload: {args.clients} clients in {args.clients // 2} pairs, "
              f"{args.seconds:g} s per run, median of {args.repeats}; server on core {SERVER_CORE}, "
              f"load on core {LOAD_CORE}; {time.strftime('%Y-%m-%d %H:%M')}")
        print(f"{'server':34} {'offered':>7} {'delivered':>10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>7} "
              f"{'dup':>5} {'CPU':>7} {'KiB/cl':>7}")
        rows: list[Row] = []
        for setup in setups:
            rows += await bench_one(setup, rates, args.seconds, args.repeats, args.clients, work)
        print("\nratios to the bare relays in this run (p99 and delivered rate):")
        for ref_key in ("bare Starlette relay", "bare websockets relay"):
            refs = {r.rate: r for r in rows if r.name == ref_key}
            if not refs:
                continue
            print(f"-- against the {ref_key}")
            for r in rows:
                if r.name.startswith("rtc_server") and r.rate in refs:
                    print(_line(r, refs[r.rate]))
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(10)
        for url in databases:
            await drop_database(url)
    print(f"(server logs in {work})")


def run_bench(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench/chat.py", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="5000,10000,15000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--only", default="", help="websockets,starlette,rtc-sqlite,rtc-postgres,rtc-2x")
    parser.add_argument("--profile", action="store_true",
                        help="profile rtc_server (cProfile, a .prof per instance beside the logs)")
    args = parser.parse_args(argv)
    global PROFILE
    PROFILE = args.profile
    asyncio.run(_bench(args))


if __name__ == "__main__":
    main()
