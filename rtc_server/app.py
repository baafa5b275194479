"""The application factory: settings in, Starlette app out.

Everything with a lifetime (engine, broker, mailer, mail worker, background
sealer) is built in the lifespan and kept on ``app.state`` (``app.state.deps``
for handlers and services); there are no module globals, so tests build as
many independent apps as they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from rtc_server import audit, health
from rtc_server.api import api_fallback
from rtc_server.audit_writer import WRITER_INFO, AuditWriter
from rtc_server.auth.password_policy import load_common_passwords
from rtc_server.auth.session_cache import SessionCache
from rtc_server.auth.sessions import SESSION_CACHE_INFO
from rtc_server.broker import create_broker
from rtc_server.chat.runtime import start_chat
from rtc_server.config import Settings
from rtc_server.db import create_engine, make_session_factory
from rtc_server.deps import Deps
from rtc_server.http_errors import exception_handlers
from rtc_server.middleware.csrf import CsrfMiddleware
from rtc_server.middleware.errors import UnexpectedErrorMiddleware
from rtc_server.middleware.request_id import RequestIdMiddleware
from rtc_server.middleware.security_headers import SecurityHeadersMiddleware
from rtc_server.notify.email import Mailer
from rtc_server.notify.events import BROKER_INFO
from rtc_server.notify.outbox import WAKE_INFO, MailWorker
from rtc_server.portal.appointments.reminders import ReminderWorker
from rtc_server.readpool import READ_POOL_INFO, ReadPool
from rtc_server.realtime import RealtimeLayer
from rtc_server.rooms.runtime import start_visits
from rtc_server.webfiles import WEB_DIR, require_web_dir

log = logging.getLogger("rtc_server")

#: Feature route tables, listed (not discovered). Each module exposes ``routes``.
FEATURE_ROUTE_MODULES = (
    "rtc_server.auth.routes",
    "rtc_server.auth.recovery_routes",
    "rtc_server.portal.registration.routes",
    "rtc_server.portal.account.routes",
    "rtc_server.admin.routes",
    "rtc_server.portal.appointments.routes",
    "rtc_server.console.routes",
    "rtc_server.pharmacy.routes",
    "rtc_server.portal.refills.routes",
    "rtc_server.portal.helpdesk.routes",
    "rtc_server.console.shell",
    "rtc_server.console.patients",
    "rtc_server.portal.records.routes",
    "rtc_server.portal.labs.routes",
    "rtc_server.portal.dashboard.routes",
    "rtc_server.console.results",
    "rtc_server.console.charts",
    "rtc_server.chat.routes",
    "rtc_server.rooms.routes",
    "rtc_server.signaling.ws",
    "rtc_server.notify.live",
)

SEAL_EVERY_SECONDS = 2.0


def _routes() -> list[BaseRoute]:
    table: list[BaseRoute] = [Route("/healthz", health.healthz, methods=["GET"])]
    table += health.routes
    for name in FEATURE_ROUTE_MODULES:
        table += importlib.import_module(name).routes
    table.append(api_fallback)  # JSON 404/405 for the rest of /api/, not the static pages'
    return table


def _seal_forever(app: Starlette) -> Coroutine[None, None, None]:
    """Give the engine the key that tags audit rows (before any request writes
    one, hence not async), keep this instance's sealer on ``app.state.audit_sealer``
    and return its loop for the lifespan to run."""
    settings = app.state.settings
    audit.bind_key(app.state.engine, settings.secret)
    sealer = audit.Sealer(app.state.session_factory, settings.secret, head_file=settings.audit_head_file)
    app.state.audit_sealer = sealer
    return sealer.run_forever(SEAL_EVERY_SECONDS)


def create_app(settings: Settings, *, web_dir: Path | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(load_common_passwords)
        # Read or create the key file now (in a thread), not on a request.
        await anyio.to_thread.run_sync(lambda: settings.secret)
        engine = create_engine(settings)
        app.state.engine = engine
        broker = create_broker(settings)
        await broker.start()
        mailer = Mailer(settings)
        mail_worker = MailWorker(mailer, settings)
        # Read requests hand their audit rows to one group-commit writer per instance.
        audit_writer = AuditWriter(engine)
        audit_writer.start()
        app.state.audit_writer = audit_writer
        # Live sessions remembered per instance, forgotten on the broker's session events.
        session_cache = SessionCache(broker)
        await session_cache.start()
        app.state.session_cache = session_cache
        # The hottest reads (dashboard, lab list) on the driver's own connections (SQLite).
        read_pool = ReadPool.for_engine(engine)
        if read_pool is not None:
            await read_pool.start()
        # Sessions publish their events and wake the mail worker after commit.
        factory = make_session_factory(engine, **{BROKER_INFO: broker, WAKE_INFO: mail_worker.wake,
                                                  WRITER_INFO: audit_writer,
                                                  SESSION_CACHE_INFO: session_cache,
                                                  **({READ_POOL_INFO: read_pool} if read_pool else {})})
        mail_worker.start(factory)
        app.state.deps = Deps(settings=settings, session_factory=factory, broker=broker,
                              mailer=mailer, mail_worker=mail_worker)
        # The single accessors older handlers use (``context.db`` and friends).
        app.state.session_factory = factory
        app.state.broker = broker
        app.state.mailer = mailer
        app.state.realtime = RealtimeLayer(settings, broker, factory)
        await app.state.realtime.start()
        app.state.chat = await start_chat(app.state.deps, app.state.realtime)
        app.state.visits = await start_visits(app.state.deps)
        reminders = ReminderWorker(factory, settings)
        reminders.start()
        sealer = asyncio.create_task(_seal_forever(app), name="audit-sealer")
        try:
            yield
        finally:
            sealer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sealer
            await reminders.aclose()
            await mail_worker.aclose()
            await mailer.aclose()
            await app.state.visits.close()
            await app.state.chat.close()
            await app.state.realtime.close()
            await session_cache.close()
            await broker.close()
            await audit_writer.aclose()
            if read_pool is not None:
                await read_pool.close()
            await engine.dispose()

    routes = _routes()
    # Refuses (one line, exit status 1) when the pages are missing, rather than serve 404s.
    static = require_web_dir(web_dir or WEB_DIR)
    routes.append(Mount("/", StaticFiles(directory=static, html=True), name="web"))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies),
            Middleware(CsrfMiddleware, origins=settings.origins, secure=settings.secure_cookies),
            Middleware(UnexpectedErrorMiddleware),  # last: its 500 passes the ones above
        ],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.openapi = None
    return app
