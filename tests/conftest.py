"""Shared fixtures: real services, no mocks of our own code.

- ``settings``/``app``/``client``: a fresh app on a fresh database (SQLite by
  default; parametrize ``backend`` with ``"postgres"`` for PostgreSQL), with
  migrations applied and a real local SMTP server (aiosmtpd) capturing mail.
  Each database is a copy of one migrated once per test session (a file copy
  for SQLite, ``CREATE DATABASE ... TEMPLATE`` for PostgreSQL). Settings are
  fast (``tests.harness.FAST``: no deliberate delays); a test that asserts a
  delay asks for it with ``@pytest.mark.settings(response_floor_seconds=0.4)``.
  ``await app.state.deps.mail_worker.drain()`` waits until queued mail is sent.
- ``redis_url``: a real Redis; ``pg_admin_url``: a real PostgreSQL.
- ``live_server`` + ``browser_page``: uvicorn on a free port and headless
  Chromium (``/usr/bin/chromium``) with a fake camera and microphone.

Outside CI a missing PostgreSQL, Redis or Chromium skips with the reason; with
``CI=true`` it fails. Every log line of the run is kept and checked at the end
for the secrets tests registered with ``secrets_seen`` (passwords, tokens,
answers): a leak fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
from aiosmtpd.controller import Controller

from rtc_server.app import create_app
from rtc_server.cli import WS_MAX_BYTES, install_log_filters
from rtc_server.config import Settings
from rtc_server.db import create_engine
from rtc_server.migrate import upgrade
from tests.harness import (  # noqa: F401
    IN_CI,
    PG_URL,
    SAMPLES,
    csrf_client,
    find_leaks,
    free_port,
    make_settings,
    need,
    pg_exec,
    pg_url,
)

REDIS_URL = os.environ.get("RTC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = os.environ.get("RTC_TEST_CHROMIUM", "/usr/bin/chromium")


# --- log guard ------------------------------------------------------------

class _LogKeeper(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.lines.append(str(record.msg))


_KEEPER = _LogKeeper()
_KEEPER.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(exc_text)s"))
_SECRETS: set[str] = set()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**overrides): settings for this test's app (e.g. a real delay)")
    root = logging.getLogger()
    root.addHandler(_KEEPER)
    root.setLevel(logging.DEBUG)
    for noisy in ("aiosqlite", "asyncio", "websockets", "aiosmtpd", "mail.log", "hpack", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    install_log_filters()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = find_leaks(_KEEPER.lines, _SECRETS)
    if leaks:
        print(f"\nLOG GUARD: {len(leaks)} secret(s) appeared in log lines during the suite")
        session.exitstatus = 1


@pytest.fixture
def secrets_seen() -> set[str]:
    """Add every password, token or answer a test uses; the run fails if any is logged."""
    return _SECRETS


@pytest.fixture
def log_lines() -> list[str]:
    return _KEEPER.lines


# --- SMTP -----------------------------------------------------------------

class SmtpSink:
    """A real SMTP server on 127.0.0.1 that keeps what it receives.

    A slow mail server: ``sink.accepting.clear()`` stalls every message until
    ``sink.accepting.set()``. A failing one: ``sink.refuse_next = n`` answers
    the next n messages with 451 (try again later)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._cond = threading.Condition()
        self.accepting = threading.Event()
        self.accepting.set()
        self.refuse_next = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        while not self.accepting.is_set():  # on the SMTP server's own loop and thread
            await asyncio.sleep(0.01)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return "451 Try again later"
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[attr-defined]
        with self._cond:
            self.messages.append(msg)  # type: ignore[arg-type]
            self._cond.notify_all()
        return "250 OK"

    async def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} mail(s), got {len(self.messages)}")
            await asyncio.sleep(0.02)
        return self.messages

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    @staticmethod
    def text(msg: EmailMessage) -> str:
        part = msg.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    @staticmethod
    def links(msg: EmailMessage) -> list[str]:
        return re.findall(r"https?://[^\s\"'<>]+", SmtpSink.text(msg))


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.port = free_port()  # type: ignore[attr-defined]
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)  # type: ignore[attr-defined]
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# --- databases ------------------------------------------------------------



@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` unless a test parametrizes it (indirect) with ``postgres``."""
    return getattr(request, "param", "sqlite")




async def _migrate_url(url: str, data_dir: Path) -> None:
    engine = create_engine(make_settings(data_dir, url, _NO_SMTP))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


class _NoSmtp:
    port = 25


_NO_SMTP = _NoSmtp()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file with every migration applied; each test gets a copy."""
    folder = tmp_path_factory.mktemp("db-template")
    path = folder / "template.db"
    asyncio.run(_migrate_url(f"sqlite+aiosqlite:///{path}", folder))
    return path


@pytest.fixture(scope="session")
def _migrated_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated PostgreSQL database that fresh ones are created from (nobody
    stays connected to it, as ``CREATE DATABASE ... TEMPLATE`` requires)."""
    name = f"rtc_tmpl_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(pg_exec(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # asyncpg raises many kinds when the server is down
        need("PostgreSQL", f"{PG_URL}: {type(exc).__name__}: {exc}")
    try:
        asyncio.run(_migrate_url(pg_url(name), tmp_path_factory.mktemp("pg-template")))
        yield name
    finally:
        asyncio.run(pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def _db_template(backend: str, request: pytest.FixtureRequest) -> Path | str:
    """This backend's template (a sync fixture: templates are built with asyncio.run)."""
    return request.getfixturevalue(  # type: ignore[no-any-return]
        "_migrated_sqlite" if backend == "sqlite" else "_migrated_postgres")


@pytest_asyncio.fixture
async def database_url(backend: str, tmp_path: Path, _db_template: Path | str) -> AsyncIterator[str]:
    """A new, migrated, empty database of this test's backend (dropped afterwards)."""
    if backend == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(_db_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = _db_template
    name = f"rtc_t_{uuid.uuid4().hex[:12]}"
    await pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield pg_url(name)
    finally:
        await pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def redis_url() -> str:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        need("Redis", f"{REDIS_URL}: {type(exc).__name__}")
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, smtp: SmtpSink, request: pytest.FixtureRequest
) -> Settings:
    """Fast settings (``harness.FAST``) on the migrated ``database_url``;
    ``@pytest.mark.settings(**overrides)`` changes them for one test (or a module)."""
    extra: dict[str, object] = {}
    for marker in reversed(list(request.node.iter_markers("settings"))):
        extra.update(marker.kwargs)
    return make_settings(tmp_path, database_url, smtp, **extra)


@pytest_asyncio.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def drain_mail(app: object) -> object:
    """``await drain_mail()``: returns once every mail queued so far has been sent
    (or fails the test after 10 s)."""
    worker = app.state.deps.mail_worker  # type: ignore[attr-defined]

    async def drain() -> None:
        async with asyncio.timeout(10):
            await worker.drain()

    return drain


@pytest.fixture
def session_factory(app: object) -> object:
    return app.state.session_factory  # type: ignore[attr-defined]


@pytest_asyncio.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    c = await csrf_client(app)
    try:
        yield c
    finally:
        await c.aclose()


@pytest_asyncio.fixture
async def make_client(app: object) -> AsyncIterator[object]:
    """Factory for extra independent clients (another browser, another user)."""
    made: list[httpx.AsyncClient] = []

    async def factory() -> httpx.AsyncClient:
        c = await csrf_client(app)
        made.append(c)
        return c

    yield factory
    for c in made:
        await c.aclose()


# --- live server and browser ---------------------------------------------

class LiveServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = int(settings.base_url.rsplit(":", 1)[1])
        self.url = settings.base_url
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="info", log_config=None,
            ws="websockets-sansio",
            ws_max_size=WS_MAX_BYTES,
            ws_per_message_deflate=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextlib.asynccontextmanager
async def running_server(
    tmp_path: Path, database_url: str, smtp: SmtpSink, **extra: object
) -> AsyncIterator[LiveServer]:
    """A migrated database and uvicorn on a free port (settings overridable)."""
    port = free_port()
    cfg = make_settings(tmp_path, database_url, smtp, base_url=f"http://127.0.0.1:{port}", **extra)
    engine = create_engine(cfg)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    server = LiveServer(cfg)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest_asyncio.fixture
async def live_server(tmp_path: Path, database_url: str, smtp: SmtpSink) -> AsyncIterator[LiveServer]:
    async with running_server(tmp_path, database_url, smtp) as server:
        yield server


CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[object]:
    """One Chromium for the whole session (launching it costs about a second); each test
    gets its own context from ``browser_page``, so cookies and storage never leak.
    Playwright objects belong to the loop that made them, so tests that use the browser
    run on the session loop (tests/browser/conftest.py marks them)."""
    if not os.path.exists(CHROMIUM):
        need("Chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser_page(browser: object) -> AsyncIterator[object]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = await context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        await context.close()
