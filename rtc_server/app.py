"""The application factory: settings in, Starlette app out.

Everything with a lifetime (engine, broker, mailer, background sealer) is
built in the lifespan and kept on ``app.state``; there are no module globals,
so tests build as many independent apps as they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from rtc_server import audit, health
from rtc_server.auth.password_policy import load_common_passwords
from rtc_server.auth.ws_auth import SocketLimits
from rtc_server.broker import create_broker
from rtc_server.config import Settings
from rtc_server.db import create_engine, make_session_factory
from rtc_server.http_errors import exception_handlers
from rtc_server.middleware.csrf import CsrfMiddleware
from rtc_server.middleware.request_id import RequestIdMiddleware
from rtc_server.middleware.security_headers import SecurityHeadersMiddleware
from rtc_server.notify.email import Mailer

log = logging.getLogger("rtc_server")

WEB_DIR = Path(__file__).resolve().parent / "web"

#: Feature route tables, listed (not discovered). Each module exposes ``routes``.
FEATURE_ROUTE_MODULES = (
    "rtc_server.auth.routes",
    "rtc_server.auth.recovery_routes",
    "rtc_server.portal.registration.routes",
    "rtc_server.portal.account.routes",
    "rtc_server.admin.routes",
    "rtc_server.notify.live",
)

SEAL_EVERY_SECONDS = 2.0


def _routes() -> list[BaseRoute]:
    table: list[BaseRoute] = [Route("/healthz", health.healthz, methods=["GET"])]
    table += health.routes
    for name in FEATURE_ROUTE_MODULES:
        table += importlib.import_module(name).routes
    return table


async def _seal_forever(app: Starlette) -> None:
    while True:
        await asyncio.sleep(SEAL_EVERY_SECONDS)
        try:
            await audit.seal(
                app.state.session_factory, app.state.settings.secret,
                head_file=app.state.settings.audit_head_file,
            )
        except Exception:  # keep sealing; a failed round is retried next tick
            log.exception("audit sealing failed")


def create_app(settings: Settings, *, web_dir: Path | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(load_common_passwords)
        # Read or create the key file now (in a thread), not on a request.
        await anyio.to_thread.run_sync(lambda: settings.secret)
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.broker = create_broker(settings)
        await app.state.broker.start()
        app.state.mailer = Mailer(settings)
        app.state.sockets = SocketLimits(settings.ws_max_per_user, settings.ws_max_total)
        sealer = asyncio.create_task(_seal_forever(app), name="audit-sealer")
        try:
            yield
        finally:
            sealer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sealer
            await app.state.mailer.aclose()
            await app.state.broker.close()
            await engine.dispose()

    routes = _routes()
    static = web_dir or WEB_DIR
    if static.is_dir():
        routes.append(Mount("/", StaticFiles(directory=static, html=True), name="web"))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies),
            Middleware(CsrfMiddleware, origins=settings.origins, secure=settings.secure_cookies),
        ],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.openapi = None
    return app
