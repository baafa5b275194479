"""Memory per idle client: rtc_server's ``/ws/v1/events`` beside the bare relays.

    .venv/bin/python bench/events_idle.py [--clients 1000,2000] [--no-postgres]

Servers: ``rtc-server serve`` on SQLite and on PostgreSQL, the bare
``websockets`` relay and the bare Starlette endpoint under uvicorn (both from
bench/relays.py; every server has permessage-deflate off). For each server,
once with the client offering permessage-deflate and once without, it starts
a fresh server pinned to one core, opens and closes a few warm-up sockets,
reads the server's RSS, then opens idle sockets from this process (pinned to
the other core) up to each client count in turn, lets them settle and reads
the RSS again: KiB per idle client = RSS delta / N.

rtc_server's clients are N different signed-in users (N channels in the hub,
N sessions in the sweeper), and each has received ``ready`` (it is subscribed)
before the reading. On SQLite the delta also holds SQLite's page cache, which
grows as the handshakes read N different session rows (a fixed cost of at
most 2 MiB per pooled connection, not a cost per socket); on PostgreSQL that
cache lives in the database server, so that row shows the per-socket cost.
Target: at most 25 KiB per idle client for the events socket.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import (
    ServerProcess,
    Target,
    close_clients,
    free_port,
    open_clients,
    pin_to,
)

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
WARM_UP = 50
SETTLE_SECONDS = 3.0
SECRET = secrets.token_urlsafe(48)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    target: Target


async def make_users(data_dir: Path, n: int, base_url: str, database_url: str | None = None) -> list[str]:
    """``n`` patients with a full session each (inserted directly: no password
    hashing, which would take minutes); their session tokens."""
    from rtc_server.auth.actor import NO_REQUEST
    from rtc_server.auth.models import Role, SessionStage, User, UserStatus
    from rtc_server.auth.sessions import create_session
    from rtc_server.config import load_settings
    from rtc_server.db import create_engine, make_session_factory, utcnow
    from rtc_server.migrate import upgrade

    settings = load_settings(data_dir=data_dir, base_url=base_url, database_url=database_url,
                             secret_key=SECRET)
    engine = create_engine(settings)
    await upgrade(engine)
    tokens = []
    try:
        async with make_session_factory(engine)() as db:
            now = utcnow()
            users = [User(username=f"idle{i}", username_norm=f"idle{i}", password_hash="!",
                          role=Role.patient, status=UserStatus.active, created_at=now)
                     for i in range(n)]
            db.add_all(users)
            await db.flush()
            for user in users:
                tokens.append(await create_session(db, user, SessionStage.full, NO_REQUEST, settings))
            await db.commit()
    finally:
        await engine.dispose()
    return tokens


def rtc_server(name: str, data_dir: Path, port: int, tokens: list[str],
               database_url: str | None = None) -> Server:
    base = f"http://127.0.0.1:{port}"
    env = {"RTC_DATA_DIR": str(data_dir), "RTC_BASE_URL": base, "RTC_WS_MAX_TOTAL": "100000",
           "RTC_LOG_LEVEL": "WARNING", "RTC_SECRET_KEY": SECRET, "RTC_DATABASE_URL": database_url or ""}
    command = [str(ROOT / ".venv/bin/rtc-server"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    target = Target(
        name=name, url=lambda _i: f"ws://127.0.0.1:{port}/ws/v1/events",
        # Warm-up sockets use the last sessions, so every measured socket is a new user.
        headers=lambda i: {"Cookie": f"rtc_session={tokens[i]}"}, origin=base,
        ready_frame='{"type":"ready"}',
    )
    return Server(name, command, env, target)


def relay(kind: str, port: int) -> Server:
    command = [PYTHON, str(ROOT / "bench/relays.py"), kind, "--port", str(port)]
    name = {"websockets": "bare websockets relay", "starlette": "bare Starlette relay (uvicorn)"}[kind]
    return Server(name, command, {}, Target(name=name, url=lambda i: f"ws://127.0.0.1:{port}/r/{i // 2}"))


def offset(target: Target, by: int) -> Target:
    """The same target for clients numbered from ``by`` (other users)."""
    return Target(name=target.name, url=lambda i: target.url(i + by),
                  headers=lambda i: target.headers(i + by), origin=target.origin,
                  ready_frame=target.ready_frame)


async def measure(server: Server, port: int, counts: list[int], deflate: bool, core: int,
                  log: Path) -> list[float]:
    """KiB per idle client at each count (sockets are added to reach each)."""
    figures = []
    with ServerProcess(server.command, port=port, core=core, env=server.env, log=log) as proc:
        proc.wait_listening()
        top = max(counts)
        await close_clients(await open_clients(offset(server.target, top), WARM_UP, deflate=deflate))
        await asyncio.sleep(1.0)
        before = proc.rss_kib()
        clients: list = []
        for n in counts:
            clients += await open_clients(offset(server.target, len(clients)), n - len(clients),
                                          deflate=deflate)
            await asyncio.sleep(SETTLE_SECONDS)
            figures.append((proc.rss_kib() - before) / n)
        await close_clients(clients)
    return figures


async def postgres_database() -> str | None:
    import asyncpg

    name = f"rtc_bench_{uuid.uuid4().hex[:10]}"
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"(PostgreSQL unavailable: {type(exc).__name__}; its row is skipped)")
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1000,2000")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.clients.split(","))
    pin_to(args.client_core)
    work = Path(tempfile.mkdtemp(prefix="rtc-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    users = max(counts) + WARM_UP
    servers = [rtc_server("rtc_server /ws/v1/events, SQLite", work / "data", port,
                          await make_users(work / "data", users, base))]
    pg_url = None if args.no_postgres else await postgres_database()
    if pg_url:
        servers.append(rtc_server("rtc_server /ws/v1/events, PostgreSQL", work / "data-pg", port,
                                  await make_users(work / "data-pg", users, base, pg_url), pg_url))
    servers += [relay("websockets", port), relay("starlette", port)]
    try:
        print(f"KiB per idle client (server RSS delta / N); server on core {args.server_core}, "
              f"clients on core {args.client_core}; {time.strftime('%Y-%m-%d %H:%M')}")
        print(f"{'server':38} {'N':>6} {'client offers deflate':>22} {'no deflate offered':>19}")
        for server in servers:
            rows = [await measure(server, port, counts, deflate, args.server_core,
                                  work / f"{server.name.split()[0]}-{i}.log")
                    for i, deflate in enumerate((True, False))]
            for n, with_offer, without in zip(counts, *rows, strict=True):
                print(f"{server.name:38} {n:>6} {with_offer:>18.1f} KiB {without:>15.1f} KiB", flush=True)
    finally:
        if pg_url:
            await drop_database(pg_url)
    print(f"(server logs in {work})")


if __name__ == "__main__":
    asyncio.run(main())
