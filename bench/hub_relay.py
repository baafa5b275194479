"""rtc_server's real-time layer as a pair relay, for bench/relay_pair.py.

    RTC_DATA_DIR=... RTC_BASE_URL=... python bench/hub_relay.py --port 9003

The full app (middleware, admission with a session cookie, the hub, the
sweeper) plus one bench endpoint on the shared layer, ``/ws/bench/pair``: a
client (a signed-in user) sends ``{"type":"say","to":<user id>,...}``; the
frame is validated, published on the broker on ``bench:<to>`` and the hub
delivers it to that user's socket. So every message pays for what a chat
message pays on the transport side (validation, rate limit, one broker
publish, one encoding, the hub) but not for storage.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter


class Say(BaseModel):
    type: Literal["say"]
    to: int = Field(ge=1)
    sender: int = Field(alias="from")
    seq: int
    t: int


def build_app():
    from rtc_server.app import create_app
    from rtc_server.config import load_settings
    from rtc_server.realtime import Connection, Endpoint

    async def say(conn: Connection, frame: Say) -> None:
        broker = conn.ws.app.state.broker
        await broker.publish(f"bench:{frame.to}", {"from": frame.sender, "seq": frame.seq, "t": frame.t})

    endpoint = Endpoint(
        "/ws/bench/pair", frames=TypeAdapter(Annotated[Say, Field(discriminator="type")]), on_frame=say,
        channels=lambda actor: [f"bench:{actor.user_id}"], frames_per_second=1000,
    )
    app = create_app(load_settings())
    app.router.routes.insert(0, endpoint.route())
    return app


def main() -> None:
    import uvicorn

    from rtc_server.cli import WS_MAX_BYTES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("RTC_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, ws="websockets-sansio",
                ws_max_size=WS_MAX_BYTES, ws_per_message_deflate=False, log_level="warning",
                log_config=None)


if __name__ == "__main__":
    main()
