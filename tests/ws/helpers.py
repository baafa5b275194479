"""WebSocket test helpers: a real uvicorn server on the test's own event loop,
signed-in users and sockets.

Serving on the test's loop (not a thread) lets a test reach the running app
directly: publish on its broker, end a session and run its sweeper, read the
hub's counters. Sockets, frames and backpressure are real (TCP on loopback).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rtc_server.app import create_app
from rtc_server.auth.actor import NO_REQUEST
from rtc_server.auth.models import Role, SessionStage
from rtc_server.auth.sessions import create_session
from rtc_server.cli import WS_MAX_BYTES
from rtc_server.config import Settings
from rtc_server.realtime import RealtimeLayer
from tests.harness import add_user

#: The origin the test settings serve (``make_settings``' base URL).
ORIGIN = "http://testserver"
EVENTS = "/ws/v1/events"


@dataclass
class Served:
    app: Starlette
    settings: Settings
    port: int

    @property
    def realtime(self) -> RealtimeLayer:
        return self.app.state.realtime

    @property
    def session_factory(self) -> Any:
        return self.app.state.session_factory

    def ws_url(self, path: str = EVENTS) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def serving(settings: Settings, app: Starlette | None = None) -> AsyncIterator[Served]:
    """uvicorn as ``rtc-server serve`` runs it (sans-I/O websockets, no deflate),
    on an ephemeral port, started and stopped on the caller's loop."""
    application = app if app is not None else create_app(settings)
    config = uvicorn.Config(
        application, host="127.0.0.1", port=0, log_level="info", log_config=None,
        ws="websockets-sansio", ws_max_size=WS_MAX_BYTES, ws_per_message_deflate=False,
        lifespan="on",
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Served(application, settings, port)
    finally:
        server.should_exit = True
        await server.shutdown()


@dataclass
class User:
    id: int
    token: str


async def signed_in_user(served: Served, username: str, secrets_seen: set[str], *,
                         role: Role = Role.patient) -> User:
    """A new account with a full session (made directly, not through the log-in
    endpoint); its token is registered as a secret the log must never show."""
    async with served.session_factory() as db:
        user = await add_user(db, username, role=role)
        token = await create_session(db, user, SessionStage.full, NO_REQUEST, served.settings)
        await db.commit()
    secrets_seen.add(token)
    assert user.id is not None
    return User(user.id, token)


def cookie(user: User) -> dict[str, str]:
    return {"Cookie": f"rtc_session={user.token}"}


@asynccontextmanager
async def open_socket(served: Served, user: User | None, *, path: str = EVENTS,
                      origin: str = ORIGIN, **options: Any) -> AsyncIterator[ClientConnection]:
    """A client socket that has seen ``ready`` (so it listens on its channels)."""
    headers = cookie(user) if user is not None else {}
    options.setdefault("compression", None)
    async with connect(served.ws_url(path), origin=origin, additional_headers=headers,  # type: ignore[arg-type]
                       **options) as ws:
        first = await recv_json(ws)
        assert first == {"type": "ready"}, first
        yield ws


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> Any:
    """The next frame, decoded (the timeout only guards against a hang)."""
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def small_receive_buffer_socket(served: Served) -> socket.socket:
    """A connected TCP socket with a tiny receive buffer, for a client that stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", served.port))
    sock.setblocking(False)
    return sock


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Read until the server closes the socket; its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
