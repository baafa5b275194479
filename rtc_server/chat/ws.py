"""Messaging on the page's one live socket (transport only).

Chat frames ride on the events socket, not on a second connection:
``with_chat(events_endpoint)`` returns that endpoint with the chat frames
(``chat.frames``) added, its frame limits raised to fit a full message, and
the chat state of a socket forgotten when it closes. Each frame is handled
here by calling one service function; the relay (``chat.relay``) sends what
the socket follows.

- ``send``: checked (access: cached while the socket follows the
  conversation, else one read; size; the person's rate), handed to the group
  writer without waiting; ``ack {ref, conversation_id, id, seq, client_id,
  sent_at}`` once it is stored, or ``error {code, message, ref}``. The reader
  moves on to the next frame meanwhile.
- ``resume {conversation_id, since}``: audited as an opening; then exactly
  the messages after ``since``, in order, then ``live``, then live messages.
- ``leave``, ``read``, ``delivered``, ``typing``: as named.

Every open socket counts as an open page for the batched email/SMS notices
(``jobs.presence``): reported when its channels are joined, and when it ends.

Errors keep the socket open unless ``ws_errors`` says otherwise; nothing is
stored for a refused frame. Message text never reaches a log.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocket

from rtc_server.auth.actor import Actor
from rtc_server.chat import service
from rtc_server.chat.frames import (
    CHAT_FRAMES,
    ChatFrame,
    DeliveredFrame,
    LeaveFrame,
    ReadFrame,
    ResumeFrame,
    SendFrame,
    TypingFrame,
)
from rtc_server.chat.runtime import ChatRuntime
from rtc_server.chat.shapes import MAX_BODY_CHARS, TooLong, check_body
from rtc_server.chat.writer import Stored
from rtc_server.errors import RateLimited
from rtc_server.realtime import Connection, Endpoint
from rtc_server.ws_errors import error_frame, reply_to

#: The socket's frame limit: a message of ``MAX_BODY_CHARS`` in any script, JSON-escaped.
MAX_FRAME_BYTES = 24 * 1024
#: Frames per second per socket (the token bucket's rate and burst): a page
#: sends a message, typing and receipts, and resends a few after a reconnect.
FRAMES_PER_SECOND = 50.0
#: Typing notices per conversation and socket: at most one per this many seconds.
TYPING_EVERY = 1.0

_chat_frames = TypeAdapter(ChatFrame)
#: Text that goes into JSON as it is (the client id alphabet).
_SAFE = re.compile(r"[A-Za-z0-9_.:-]*")


def chat_of(conn: Connection) -> ChatRuntime:
    return conn.ws.app.state.chat  # type: ignore[no-any-return]


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def on_chat_frame(conn: Connection, frame: Any) -> None:
    """Handle one validated chat frame (see the module docstring)."""
    chat = chat_of(conn)
    if isinstance(frame, SendFrame):
        await _send(chat, conn, frame)
    elif isinstance(frame, ResumeFrame):
        await _resume(chat, conn, frame)
    elif isinstance(frame, LeaveFrame):
        chat.relay.unfollow(conn, frame.conversation_id)
    elif isinstance(frame, ReadFrame | DeliveredFrame):
        async with chat.deps.session_factory() as db:
            await service.mark_read(db, conn.principal, frame.conversation_id, frame.seq,
                                    now=chat.deps.clock(), delivered_only=isinstance(frame, DeliveredFrame))
    elif isinstance(frame, TypingFrame):
        await _typing(chat, conn, frame)


async def _send(chat: ChatRuntime, conn: Connection, frame: SendFrame) -> None:
    ref = frame.ref or frame.client_id
    try:
        check_body(frame.body)
    except TooLong as exc:
        conn.send_text(error_frame("too_long", str(exc), ref))
        return
    except ValueError as exc:
        conn.send_text(error_frame("bad_frame", f"body: {exc}", ref))
        return
    actor = conn.principal
    if not chat.relay.follows(conn, frame.conversation_id):
        async with chat.deps.session_factory() as db:
            await service.check_send(db, chat, actor, frame.conversation_id, now=chat.deps.clock())
    try:
        fut: asyncio.Future[Stored] = service.submit_message(  # type: ignore[assignment]
            chat, actor, frame.conversation_id, body=frame.body, client_id=frame.client_id, origin=conn)
    except RateLimited as exc:
        # Over the person's message rate: refused, the socket stays open.
        conn.send_text(error_frame("rate_limited", exc.message, ref))
        return
    fut.add_done_callback(functools.partial(_acked, conn, ref))


def _acked(conn: Connection, ref: str, fut: asyncio.Future[Stored]) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        reply = reply_to(exc, ref=ref, where="chat.send")
        if reply.frame is not None:
            conn.send_text(reply.frame)
        if reply.close is not None:
            conn.close(reply.close, reply.reason)
        return
    s = fut.result()
    # By hand: one ack per message sent, and only ``ref`` may need escaping.
    ref_json = f'"{ref}"' if ref is s.client_id or _SAFE.fullmatch(ref) else _dumps(ref)
    conn.send_text(f'{{"type":"ack","ref":{ref_json},"conversation_id":{s.conversation_id},"id":{s.id},'
                   f'"seq":{s.seq},"client_id":"{s.client_id}","sent_at":"{s.sent_at.isoformat()}"}}')


async def _resume(chat: ChatRuntime, conn: Connection, frame: ResumeFrame) -> None:
    state = chat.relay.socket(conn)
    if (frame.conversation_id not in state.follows
            and len(state.follows) >= chat.limits.follows_per_socket):
        conn.send_text(error_frame(
            "too_many_follows", f"Follow at most {chat.limits.follows_per_socket} conversations on "
            "one socket; leave one first.", frame.ref))
        return
    async with chat.deps.session_factory() as db:
        who, conv = await service.open_conversation(
            db, chat, conn.principal, frame.conversation_id, now=chat.deps.clock(), via="/ws")
    state.who = who
    await chat.relay.follow(conn, conv.id, min(frame.since, conv.last_seq))


async def _typing(chat: ChatRuntime, conn: Connection, frame: TypingFrame) -> None:
    cid = frame.conversation_id
    if not chat.relay.follows(conn, cid):
        async with chat.deps.session_factory() as db:
            await service.check_send(db, chat, conn.principal, cid, now=chat.deps.clock())
    state = chat.relay.socket(conn)
    now = asyncio.get_running_loop().time()
    if now - state.typing_at.get(cid, -TYPING_EVERY) < TYPING_EVERY:
        return  # one notice per second is plenty
    state.typing_at[cid] = now
    await service.typing(chat, conn.principal, cid)


# --- the multiplexed endpoint ----------------------------------------------------------

class _Frames:
    """The base endpoint's frames and the chat frames as one validator: a frame
    whose ``type`` is a chat type is validated as chat, any other by the base.
    (A stand-in for one discriminated union when the base's frame classes are
    not at hand; errors read the same either way.)"""

    def __init__(self, base: Any) -> None:
        self._base = base
        self._types = {f.model_fields["type"].annotation.__args__[0] for f in CHAT_FRAMES}  # type: ignore[union-attr]

    def validate_json(self, text: str) -> Any:
        try:
            return _chat_frames.validate_json(text)
        except ValidationError as exc:
            if exc.errors(include_url=False)[0]["type"] != "union_tag_invalid":
                raise
        return self._base.validate_json(text)


@dataclass(slots=True)
class _Socket:
    """The socket ``serve`` is running for (a context variable: ``channels`` gets
    only the actor, and runs in ``serve``'s task)."""

    ws: WebSocket
    user_id: int | None = None


_SERVING: contextvars.ContextVar[_Socket | None] = contextvars.ContextVar("chat_socket", default=None)


def _presence_of(ws: WebSocket) -> Any:
    chat: ChatRuntime | None = getattr(ws.app.state, "chat", None)
    return chat.presence if chat is not None else None


class ChatEndpoint(Endpoint):
    """An endpoint that also carries chat; forgets a socket's chat state when it
    closes, and counts it as an open page while it is open."""

    async def serve(self, ws: WebSocket) -> None:
        me = _Socket(ws)
        token = _SERVING.set(me)
        try:
            await super().serve(ws)
        finally:
            _SERVING.reset(token)
            chat: ChatRuntime | None = getattr(ws.app.state, "chat", None)
            if chat is not None:
                chat.relay.forget_ws(ws)
                if me.user_id is not None:
                    chat.presence.closed(me.user_id)


def _counted(channels: Any) -> Any:
    """``channels`` that also reports the socket's user as present (once per socket)."""

    def wrapped(actor: Actor) -> Iterable[str]:
        me = _SERVING.get()
        if me is not None and me.user_id is None:
            presence = _presence_of(me.ws)
            if presence is not None:
                me.user_id = actor.user_id
                presence.opened(actor.user_id)
        return channels(actor)

    return wrapped


def with_chat(base: Endpoint) -> ChatEndpoint:
    """``base`` (the events endpoint) carrying the chat frames too::

        EVENTS = with_chat(Endpoint("/ws/v1/events", frames=TypeAdapter(ClientFrame),
                                    on_frame=_on_frame, channels=_channels))
    """
    chat_types = (*CHAT_FRAMES,)

    async def on_frame(conn: Connection, frame: Any) -> None:
        if isinstance(frame, chat_types):
            await on_chat_frame(conn, frame)
        else:
            await base.on_frame(conn, frame)

    return ChatEndpoint(
        base.path, frames=_Frames(base.frames), on_frame=on_frame, channels=_counted(base.channels),  # type: ignore[arg-type]
        max_frame_bytes=max(base.max_frame_bytes, MAX_FRAME_BYTES),
        frames_per_second=max(base.frames_per_second, FRAMES_PER_SECOND),
    )


__all__ = ["FRAMES_PER_SECOND", "MAX_BODY_CHARS", "MAX_FRAME_BYTES", "ChatEndpoint", "on_chat_frame",
           "with_chat"]
