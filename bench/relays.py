"""The bare room relays rtc_server is measured against (no auth, no storage).

    python bench/relays.py websockets --port 9001   # websockets' own server
    python bench/relays.py starlette --port 9002    # a Starlette endpoint under uvicorn

A client joins room ``<name>`` at ``/r/<name>``; each text frame it sends goes
to the other members of the room. Both run without permessage-deflate, as
rtc_server does, so the figures compare like with like.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict


def run_websockets(host: str, port: int) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    rooms: dict[str, set[ServerConnection]] = defaultdict(set)

    async def relay(ws: ServerConnection) -> None:
        room = rooms[ws.request.path if ws.request else "/"]
        room.add(ws)
        try:
            async for message in ws:
                broadcast([peer for peer in room if peer is not ws], message)
        finally:
            room.discard(ws)

    async def main() -> None:
        async with serve(relay, host, port, compression=None, max_size=64 * 1024) as server:
            await server.serve_forever()

    asyncio.run(main())


def run_starlette(host: str, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    rooms: dict[str, set[WebSocket]] = defaultdict(set)

    async def relay(ws: WebSocket) -> None:
        await ws.accept()
        room = rooms[ws.path_params["room"]]
        room.add(ws)
        try:
            while True:
                message = await ws.receive_text()
                for peer in tuple(room):
                    if peer is not ws:
                        await peer.send_text(message)
        except WebSocketDisconnect:
            pass
        finally:
            room.discard(ws)

    app = Starlette(routes=[WebSocketRoute("/r/{room}", relay)])
    uvicorn.run(app, host=host, port=port, ws="websockets-sansio", ws_per_message_deflate=False,
                ws_max_size=64 * 1024, log_level="warning", lifespan="off")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["websockets", "starlette"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    (run_websockets if args.kind == "websockets" else run_starlette)(args.host, args.port)


if __name__ == "__main__":
    main()
