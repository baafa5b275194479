"""The shared real-time layer seen through an endpoint of its own: how errors
raised by a frame handler become error frames, close codes, log lines and
audit rows (``ws_errors``), generated frames against the events socket, and
the token bucket (socket limits: tests/unit/test_socket_limits.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import pytest_asyncio
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, TypeAdapter
from sqlmodel import select

from rtc_server.app import create_app
from rtc_server.audit import AuditEvent
from rtc_server.auth.actor import Actor
from rtc_server.errors import InvalidInput, NotFound
from rtc_server.notify.events import user_channel
from rtc_server.realtime import Connection, Endpoint, TokenBucket
from tests.ws.helpers import Served, closed_with, open_socket, recv_json, serving, signed_in_user


class Act(BaseModel):
    type: Literal["boom", "deny", "find", "check"]
    ref: str | None = None


async def act(conn: Connection, frame: Act) -> None:
    actor: Actor = conn.principal
    if frame.type == "boom":
        raise ZeroDivisionError("a bug")
    if frame.type == "deny":
        actor.require(False, action="thing.touch", resource="thing:1")
    if frame.type == "find":
        raise NotFound()
    if frame.type == "check":
        raise InvalidInput("thing.size", "must be at most 3")


TEST_ENDPOINT = Endpoint(
    "/ws/test", frames=TypeAdapter(Annotated[Act, Field(discriminator="type")]), on_frame=act,
    channels=lambda actor: [user_channel(actor.user_id)],
)


@pytest_asyncio.fixture
async def test_server(settings) -> AsyncIterator[Served]:
    app = create_app(settings)
    app.router.routes.insert(0, TEST_ENDPOINT.route())
    async with serving(settings, app) as served:
        yield served


async def test_handler_errors_become_error_frames_and_the_socket_stays_open(
    test_server, secrets_seen
) -> None:
    ana = await signed_in_user(test_server, "ana.silva", secrets_seen)
    async with open_socket(test_server, ana, path="/ws/test") as ws:
        await ws.send(json.dumps({"type": "find", "ref": "f1"}))
        assert await recv_json(ws) == {"type": "error", "code": "not_found", "message": "Not found.",
                                       "ref": "f1"}
        await ws.send(json.dumps({"type": "check", "ref": "c1"}))
        reply = await recv_json(ws)
        assert (reply["code"], reply["message"], reply["ref"]) == (
            "bad_frame", "thing.size: must be at most 3", "c1")


async def test_an_audited_refusal_writes_a_denied_row_and_closes_4403(test_server, secrets_seen) -> None:
    ana = await signed_in_user(test_server, "ana.silva", secrets_seen)
    async with open_socket(test_server, ana, path="/ws/test") as ws:
        await ws.send(json.dumps({"type": "deny"}))
        assert await closed_with(ws) == 4403
    async with test_server.session_factory() as db:
        [row] = (await db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied"))).all()
    assert (row.action, row.actor_id, row.resource) == ("thing.touch", ana.id, "thing:1")


async def test_a_bug_in_a_handler_closes_1011_with_a_log_line_and_no_detail_to_the_client(
    test_server, secrets_seen, log_lines
) -> None:
    ana = await signed_in_user(test_server, "ana.silva", secrets_seen)
    async with open_socket(test_server, ana, path="/ws/test") as ws:
        await ws.send(json.dumps({"type": "boom"}))
        assert await closed_with(ws) == 1011
    assert [line for line in log_lines if "unhandled ZeroDivisionError on /ws/test" in line]
    assert ws.close_reason == "internal error"


# Generated frames: JSON-ish values of any shape, raw text and bytes.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_frames = (
    _json.map(json.dumps)
    | st.fixed_dictionaries({"type": st.sampled_from(["ping", "pong", "event", ""])},
                            optional={"ref": _json}).map(json.dumps)
    | st.text(max_size=200)
)


@given(frame=_frames)
@hypothesis_settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_any_text_frame_gets_a_pong_or_an_error_frame_and_the_socket_stays_open(
    server, secrets_seen, frame
) -> None:
    user = await _user(server, secrets_seen)
    async with open_socket(server, user) as ws:
        await ws.send(frame)
        reply = await recv_json(ws)
        assert reply["type"] in ("pong", "error")
        if reply["type"] == "error":
            assert reply["code"] == "bad_frame" and isinstance(reply["message"], str)
        await ws.send('{"type":"ping","ref":"after"}')
        assert await recv_json(ws) == {"type": "pong", "ref": "after"}


async def _user(served: Served, secrets_seen: set[str]) -> object:
    """One account per server, reused by every generated example."""
    if not hasattr(served, "user"):
        served.user = await signed_in_user(served, "hypo.thesis", secrets_seen)  # type: ignore[attr-defined]
    return served.user  # type: ignore[attr-defined]


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)
    assert bucket.take(10.0) and bucket.tokens == 2.0, "refill stops at the burst"



TWO_CHANNELS = Endpoint(
    "/ws/two", frames=TypeAdapter(Annotated[Act, Field(discriminator="type")]), on_frame=act,
    channels=lambda actor: [user_channel(actor.user_id), f"other:{actor.user_id}"],
)


async def test_ready_is_the_first_frame_even_if_an_event_arrives_while_channels_are_joined(
    settings, secrets_seen, monkeypatch
) -> None:
    """An event on the first channel while the second is being joined comes after
    ``ready``, not before it (the CI failure of a chat resume test: an unread notice
    raced the reconnecting socket's set-up)."""
    import asyncio

    from rtc_server.realtime.hub import Hub

    app = create_app(settings)
    app.router.routes.insert(0, TWO_CHANNELS.route())
    join = Hub.join

    async def join_then_publish(self: Hub, conn: Connection, channel: str) -> None:
        await join(self, conn, channel)
        if channel.startswith("user:"):
            await app.state.broker.publish(channel, {"kind": "test.early"})
            await asyncio.sleep(0.05)  # delivered while the next channel is still to come

    monkeypatch.setattr(Hub, "join", join_then_publish)
    async with serving(settings, app) as served:
        ana = await signed_in_user(served, "ana.silva", secrets_seen)
        async with open_socket(served, ana, path="/ws/two") as ws:  # asserts ready came first
            early = await recv_json(ws)
            assert early["type"] == "event" and early["event"]["kind"] == "test.early", early
