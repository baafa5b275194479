"""Fan-out cost inside one process: the hub beside the designs it replaced.

    .venv/bin/python bench/fanout.py [--sockets 1000] [--events 200]

No network: each socket is a Starlette ``WebSocket`` whose ASGI ``send`` does
what uvicorn's does while the transport is writable, without the system call,
so the figures are the server's own CPU per delivered frame (process time),
steady on a busy machine. Compared:

- hub, direct send: one encoding per event, each connection written without a
  task (``realtime.Connection``, what rtc_server does);
- hub, a task per send: the same, but every send goes through a writer task
  (what "one writer task per connection" costs when it is started per frame);
- a task and a queue per socket, encoding per socket (the old ``notify/live.py``
  design: a subscription queue per socket, ``json.dumps`` per recipient).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.websockets import WebSocket, WebSocketState

from rtc_server.broker import MemoryBroker
from rtc_server.realtime import Connection, Hub
from rtc_server.realtime import connection as connection_module

EVENT = {"kind": "message", "id": 123456, "conversation_id": 42}


class FakeSocket(WebSocket):
    """A Starlette ``WebSocket`` whose ASGI ``send`` does what uvicorn's does while
    the transport is writable (wait on an event that is set, encode the text), minus
    the system call."""

    def __init__(self) -> None:
        self.frames = 0
        self.writable = asyncio.Event()
        self.writable.set()
        super().__init__({"type": "websocket", "path": "/", "headers": []}, self._receive, self._send)
        self.application_state = WebSocketState.CONNECTED

    async def _receive(self) -> dict[str, Any]:
        raise AssertionError("not used")

    async def _send(self, message: dict[str, Any]) -> None:
        await self.writable.wait()
        message["text"].encode()
        self.frames += 1


async def hub_run(n: int, events: int, *, task_per_send: bool) -> float:
    broker = MemoryBroker()
    hub = Hub(broker)
    await hub.start()
    sockets = [FakeSocket() for _ in range(n)]
    conns = [Connection(ws, None) for ws in sockets]  # type: ignore[arg-type]
    for conn in conns:
        await hub.join(conn, "room:1")
    original = Connection._start
    if task_per_send:
        def start_in_task(self: Connection, message: dict[str, Any]) -> None:
            self._outbox = deque([message])
            self._writer = asyncio.create_task(_drain(self))
        Connection._start = start_in_task  # type: ignore[method-assign]
    try:
        t0 = time.process_time()
        for _ in range(events):
            await broker.publish("room:1", EVENT)
            if task_per_send:  # let the writers run
                await asyncio.gather(*(c._writer for c in conns if c._writer is not None))
        elapsed = time.process_time() - t0
    finally:
        Connection._start = original  # type: ignore[method-assign]
    assert sum(s.frames for s in sockets) == n * events
    await hub.close()
    return elapsed / (n * events) * 1e6


async def _drain(conn: Connection) -> None:
    try:
        while conn._outbox:
            await conn.ws.send(conn._outbox.popleft())
    except connection_module._GONE:
        pass
    finally:
        conn._outbox = None
        conn._writer = None


async def per_socket_run(n: int, events: int) -> float:
    sockets = [FakeSocket() for _ in range(n)]
    queues: list[asyncio.Queue[dict[str, Any]]] = [asyncio.Queue(1000) for _ in range(n)]

    async def forward(ws: FakeSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            event = await queue.get()
            await ws.send({"type": "websocket.send",
                           "text": json.dumps({"type": "event", "event": event}, separators=(",", ":"))})
            queue.task_done()

    tasks = [asyncio.create_task(forward(ws, q)) for ws, q in zip(sockets, queues, strict=True)]
    await asyncio.sleep(0)
    t0 = time.process_time()
    for _ in range(events):
        for q in queues:
            q.put_nowait(EVENT)
        for q in queues:
            await q.join()
    elapsed = time.process_time() - t0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(s.frames for s in sockets) == n * events
    return elapsed / (n * events) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = {
        "hub, direct send (rtc_server)": lambda: hub_run(args.sockets, args.events, task_per_send=False),
        "hub, a task per send": lambda: hub_run(args.sockets, args.events, task_per_send=True),
        "task + queue + encode per socket (old)": lambda: per_socket_run(args.sockets, args.events),
    }
    print(f"fan-out of {args.events} events to {args.sockets} sockets on one channel; "
          f"median of {args.repeat}; CPU µs per delivered frame")
    for name, run in runs.items():
        figures = sorted([await run() for _ in range(args.repeat)])
        print(f"{name:40} {figures[len(figures) // 2]:6.2f} µs", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
