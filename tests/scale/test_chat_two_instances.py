"""Two real server processes on one PostgreSQL database and one Redis: a
patient on one, her provider on the other, 1,000 messages each way, through
a forced client disconnect, a ``kill -9`` of the patient's instance (she
reconnects to the other), and a Redis restart. Nothing acknowledged is lost,
nothing is delivered twice, and each side sees the other's messages in the
order they were sent.

Redis is a private ``redis-server`` on a free port (the machine's shared one
must not be restarted). The servers are ``bench/chat.py serve`` (``rtc-server
serve``'s uvicorn options).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import update
from sqlmodel import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from rtc_server.auth.actor import NO_REQUEST
from rtc_server.auth.models import Role, SessionStage, User
from rtc_server.auth.sessions import create_session
from rtc_server.chat.models import Category, Conversation, Member, Message
from rtc_server.config import Settings
from rtc_server.db import create_engine, make_session_factory, utcnow
from rtc_server.records.models import Practitioner
from tests.harness import add_user, need, patient_row

pytestmark = [pytest.mark.parametrize("backend", ["postgres"], indirect=True), pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "http://testserver"
EACH_WAY = 1000
#: Messages per second per client (under the socket's 50 frames per second).
RATE = 40.0
MARK = "BODY-7c1e"  # in every message text; must never appear in a server log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Redis:
    """A private redis-server that can be restarted on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            need("redis-server", "not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Instance:
    """One server process (started, killed with SIGKILL, started again)."""

    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.env = {**os.environ, **env, "RTC_BASE_URL": f"http://127.0.0.1:{self.port}",
                    "RTC_DATA_DIR": str(folder / name)}
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        import rtc_server.app

        if "rtc_server.chat.routes" in getattr(rtc_server.app, "FEATURE_ROUTE_MODULES", ()):
            return [str(ROOT / ".venv/bin/rtc-server"), "serve", "--port", str(self.port)]
        return [sys.executable, str(ROOT / "bench/chat.py"), "serve", "--port", str(self.port)]

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command(), env=self.env, stdout=out, stderr=out)
        _wait_port(self.port, self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no shutdown, no flush
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v1/events"


class ChatClient:
    """A page's messaging as a careful client does it: every message keeps its
    client id until acknowledged; after any reconnect it resumes from the last
    sequence it holds without a gap, then resends what is unacknowledged, in order."""

    def __init__(self, name: str, user_id: int, token: str, conversation_id: int) -> None:
        self.name = name
        self.user_id = user_id
        self.token = token
        self.conversation_id = conversation_id
        self.urls: list[str] = []
        self.pending: OrderedDict[str, str] = OrderedDict()
        self.sent: list[str] = []
        self.acked: dict[str, int] = {}
        self.known: set[int] = set()
        self.prefix = 0
        self.received: dict[int, str] = {}  # seq → body, the other side's messages
        self.duplicates = 0
        self.reorders = 0
        self.errors: list[dict[str, Any]] = []
        self.connections = 0
        self.visited: list[str] = []
        self.ws: ClientConnection | None = None
        self.live = asyncio.Event()
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    def start(self, urls: list[str]) -> None:
        self.urls = urls
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop = True
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def drop(self) -> None:
        """The network goes away under this client (no close handshake)."""
        if self.ws is not None:
            self.ws.transport.abort()

    async def send(self, i: int) -> None:
        client_id = f"{self.name}-{i}"
        self.pending[client_id] = f"{MARK} {self.name} {i}"
        self.sent.append(client_id)
        if self.live.is_set() and self.ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(self._frame(client_id))

    def _frame(self, client_id: str) -> str:
        return json.dumps({"type": "send", "conversation_id": self.conversation_id,
                           "client_id": client_id, "body": self.pending[client_id]})

    def _know(self, seq: int) -> None:
        self.known.add(seq)
        while self.prefix + 1 in self.known:
            self.prefix += 1

    async def _run(self) -> None:
        """The preferred instance first; the next one only when it cannot be reached."""
        while not self._stop:
            for url in self.urls:
                before = self.connections
                try:
                    await self._session(url)
                except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                    pass
                self.live.clear()
                self.ws = None
                if self._stop:
                    return
                if self.connections > before:
                    break  # it was connected: start again from the preferred one
            await asyncio.sleep(0.2)

    async def _session(self, url: str) -> None:
        async with connect(url, origin=ORIGIN, compression=None, open_timeout=5,  # type: ignore[arg-type]
                           additional_headers={"Cookie": f"rtc_session={self.token}"}) as ws:
            self.ws = ws
            self.connections += 1
            self.visited.append(url)
            last = 0  # per connection: message frames must arrive in increasing seq order
            await ws.send(json.dumps({"type": "resume", "conversation_id": self.conversation_id,
                                      "since": self.prefix}))
            async for text in ws:
                frame = json.loads(text)
                kind = frame["type"]
                if kind == "message":
                    if frame["seq"] <= last:
                        self.reorders += 1
                    last = frame["seq"]
                    if frame["sender_id"] != self.user_id:
                        if frame["seq"] in self.received:
                            self.duplicates += 1
                        self.received[frame["seq"]] = frame["body"]
                    self._know(frame["seq"])
                elif kind == "ack":
                    self.acked[frame["client_id"]] = frame["seq"]
                    self.pending.pop(frame["client_id"], None)
                    self._know(frame["seq"])
                elif kind == "live":
                    await self._resend(ws)
                elif kind == "error":
                    self.errors.append(frame)

    async def _resend(self, ws: ClientConnection) -> None:
        """Resend what is unacknowledged, in order, paced under the frame limit;
        then go live (new messages are sent at once from then on)."""
        done: set[str] = set()
        while True:
            todo = [cid for cid in self.pending if cid not in done]
            if not todo:
                break
            for cid in todo:
                if cid in self.pending:
                    await ws.send(self._frame(cid))
                    await asyncio.sleep(1 / RATE)
                done.add(cid)
        self.live.set()


async def _sessions(settings: Settings) -> tuple[ChatClient, ChatClient]:
    engine = create_engine(settings)
    try:
        factory = make_session_factory(engine)
        async with factory() as db:
            doctor = Practitioner(prefix="Dr.", given_name="Ada", family_name="Reyes")
            db.add(doctor)
            patient = patient_row()
            db.add(patient)
            await db.flush()
            patient.primary_practitioner_id = doctor.id
            maria = await add_user(db, "maria.lopez", patient_id=patient.id)
            reyes = await add_user(db, "dr.reyes", role=Role.provider)
            await db.exec(update(User).where(User.id == reyes.id).values(practitioner_id=doctor.id))
            now = utcnow()
            conv = Conversation(patient_id=patient.id, provider_id=doctor.id, routed_to_id=doctor.id,  # type: ignore[arg-type]
                                category=Category.question, subject="Scale", created_by=maria.id,
                                created_at=now, last_seq=0)
            db.add(conv)
            await db.flush()
            for uid in (maria.id, reyes.id):
                db.add(Member(conversation_id=conv.id, user_id=uid, joined_at=now))  # type: ignore[arg-type]
            tokens = [await create_session(db, u, SessionStage.full, NO_REQUEST, settings)
                      for u in (maria, reyes)]
            await db.commit()
            return (ChatClient("patient", maria.id, tokens[0], conv.id),  # type: ignore[arg-type]
                    ChatClient("provider", reyes.id, tokens[1], conv.id))  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def _stored(settings: Settings) -> list[Message]:
    engine = create_engine(settings)
    try:
        async with make_session_factory(engine)() as db:
            return list((await db.exec(select(Message).order_by(Message.seq))).all())
    finally:
        await engine.dispose()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    r = Redis(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest_asyncio.fixture
async def instances(
    settings: Settings, redis: Redis, tmp_path: Path,
) -> AsyncIterator[tuple[Instance, Instance]]:
    env = {
        "RTC_DATABASE_URL": settings.database_url_effective, "RTC_REDIS_URL": redis.url,
        "RTC_SECRET_KEY": settings.secret_key or "", "RTC_ALLOWED_ORIGINS": ORIGIN,
        "RTC_AUTO_MIGRATE": "false", "RTC_SMTP_URL": "", "RTC_LOG_LEVEL": "INFO",
        "RTC_CHAT_MESSAGES_PER_SECOND": "1000", "RTC_CHAT_BURST": "1000",
    }
    one, two = Instance("one", env, tmp_path), Instance("two", env, tmp_path)
    try:
        await asyncio.gather(asyncio.to_thread(one.start), asyncio.to_thread(two.start))
        yield one, two
    finally:
        one.stop()
        two.stop()


async def _wait(what: str, check: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_thousand_messages_each_way_survive_a_drop_a_kill_and_a_redis_restart(
    settings, instances, redis,
) -> None:
    one, two = instances
    patient, provider = await _sessions(settings)
    patient.start([one.url, two.url])
    provider.start([two.url, one.url])
    try:
        await asyncio.wait_for(asyncio.gather(patient.live.wait(), provider.live.wait()), 30)

        async def talk(client: ChatClient, events: dict[int, Any]) -> None:
            for i in range(EACH_WAY):
                if i in events:
                    await events[i]()
                await client.send(i)
                await asyncio.sleep(1 / RATE)

        async def drop_patient() -> None:
            patient.drop()

        async def kill_patients_instance() -> None:
            await asyncio.to_thread(one.kill)  # she reconnects to instance two
            await asyncio.to_thread(one.start)  # and it comes back, empty

        async def move_provider() -> None:
            provider.urls = [one.url, two.url]  # back on different instances
            provider.drop()

        async def restart_redis() -> None:
            await asyncio.wait_for(asyncio.gather(patient.live.wait(), provider.live.wait()), 30)
            assert patient.visited[-1] != provider.visited[-1], "on different instances"
            await asyncio.to_thread(redis.stop)
            await asyncio.sleep(1.0)  # messages keep being stored and acknowledged meanwhile
            await asyncio.to_thread(redis.start)

        await asyncio.gather(
            talk(patient, {200: drop_patient, 400: kill_patients_instance}),
            talk(provider, {600: move_provider, 800: restart_redis}),
        )
        await _wait("every message acknowledged and delivered", lambda: (
            not patient.pending and not provider.pending
            and len(patient.received) == EACH_WAY and len(provider.received) == EACH_WAY))
    finally:
        await patient.stop()
        await provider.stop()

    assert (patient.duplicates, provider.duplicates) == (0, 0)
    assert (patient.reorders, provider.reorders) == (0, 0)
    assert patient.errors == [] and provider.errors == []
    assert patient.connections >= 3 and provider.connections >= 2, (patient.visited, provider.visited)
    for me, other in ((patient, provider), (provider, patient)):
        # Everything the other side sent, in the order it was sent.
        expected = [f"{MARK} {other.name} {cid.rsplit('-', 1)[1]}" for cid in other.sent]
        assert [me.received[seq] for seq in sorted(me.received)] == expected
    stored = await _stored(settings)
    assert [m.seq for m in stored] == list(range(1, 2 * EACH_WAY + 1)), "gap-free, nothing twice"
    assert len({(m.sender_id, m.client_id) for m in stored}) == len(stored)
    acked = {**patient.acked, **provider.acked}
    assert {m.client_id: m.seq for m in stored} == acked, "every ack names the stored message"
    for inst in (one, two):
        assert MARK not in inst.log.read_text(errors="replace"), "message text in a server log"
