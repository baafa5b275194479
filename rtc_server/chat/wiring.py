"""Messaging wired into an app that does not list it yet (transitional).

``app.py`` (route table, lifespan) and ``notify/live.py`` (the events socket)
belong to other owners; until they carry messaging, tests and the benchmark
server call ``ensure_chat(app)``. It adds what is missing and nothing else:

- the REST routes (before the API's catch-all and the static files);
- the events socket with the chat frames (``chat.ws.with_chat``);
- the runtime on ``app.state.chat``, started after the app's own lifespan
  has started and closed before it closes.

Once ``app.py`` and ``notify/live.py`` carry messaging, this does nothing and
can be deleted (docs/messaging.md lists the lines).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute

from rtc_server.api import API_PREFIX
from rtc_server.chat import routes as chat_routes
from rtc_server.chat.runtime import start_chat
from rtc_server.chat.ws import ChatEndpoint, with_chat
from rtc_server.realtime import Endpoint

EVENTS_PATH = "/ws/v1/events"


def ensure_chat(app: Starlette) -> Starlette:
    table = app.router.routes
    if not any(getattr(r, "path", "").startswith(API_PREFIX + "/conversations") for r in table):
        # Before the API's catch-all (``/api/{rest:path}``) and the static files.
        catch_all = "/api/{"
        at = next((i for i, r in enumerate(table)
                   if isinstance(r, Mount) or getattr(r, "path", "").startswith(catch_all)), len(table))
        table[at:at] = chat_routes.routes
    for i, r in enumerate(table):
        if isinstance(r, WebSocketRoute) and r.path == EVENTS_PATH:
            endpoint = r.endpoint
            if not isinstance(endpoint, Endpoint):  # a bound ``serve`` in older versions
                endpoint = getattr(endpoint, "__self__", None)
            if isinstance(endpoint, Endpoint) and not isinstance(endpoint, ChatEndpoint):
                table[i] = with_chat(endpoint).route()
    original = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with original(application) as state:
            own = getattr(application.state, "chat", None) is None
            if own:
                application.state.chat = await start_chat(application.state.deps,
                                                          application.state.realtime)
            try:
                yield state
            finally:
                if own:
                    await application.state.chat.close()

    app.router.lifespan_context = lifespan
    return app
