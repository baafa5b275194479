"""Secure messaging over plain HTTP (``/api/v1/conversations…``): everything a
page needs works without a socket, so a phone on a bad network still gets
through. Sending is idempotent on ``client_id`` (201 the first time, 200 with
``Idempotent-Replayed: true`` for a resend, same id and seq). The rules live
in ``service`` and ``manage``; frames of the live socket in ``ws``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response, read_query
from rtc_server.chat import attachments, manage, service
from rtc_server.chat.models import Status
from rtc_server.chat.runtime import ChatRuntime
from rtc_server.chat.shapes import (
    AttachmentOut,
    ComposeInfoOut,
    ConversationList,
    ConversationOut,
    ListQuery,
    MessagesOut,
    MessagesQuery,
    ProviderOut,
    ReadIn,
    ReadOut,
    RouteIn,
    SendIn,
    SentOut,
    StartedOut,
    StartIn,
    UnreadOut,
    UploadQuery,
)
from rtc_server.errors import NotFound, RequestTimeout

_REPLAYED = {"Idempotent-Replayed": "true"}


def chat_of(request: Request) -> ChatRuntime:
    return request.app.state.chat  # type: ignore[no-any-return]


async def list_conversations(call: Call) -> Response:
    """Your conversations, newest activity first, with unread counts."""
    q: ListQuery = call.query
    return json_response(await service.list_conversations(
        call.db, call.actor, archived=q.archived, status=q.status, limit=q.limit, offset=q.offset))


async def start(call: Call) -> Response:
    """Start a conversation with its first message (idempotent on ``client_id``)."""
    out, created = await service.start_conversation(
        call.db, chat_of(call.request), call.actor, call.body, now=call.deps.clock())
    return json_response(out, 201) if created else json_response(out, 200, _REPLAYED)


async def compose_info(call: Call) -> Response:
    """Categories, the usual reply time and the emergency notice for the New Message page."""
    return json_response(service.compose_info(chat_of(call.request)))


async def unread(call: Call) -> Response:
    """Unread messages in all your conversations (badges, dashboard)."""
    return json_response(await service.unread(call.db, call.actor))


async def route_targets(call: Call) -> Response:
    """Providers a conversation can be routed to (providers and staff)."""
    return json_response(await manage.route_targets(call.db, call.actor))


async def get_conversation(call: Call) -> Response:
    """One conversation with its members' read receipts (audited as an opening)."""
    return json_response(await service.get_conversation(
        call.db, chat_of(call.request), call.actor, call.path_int(), now=call.deps.clock()))


async def list_messages(call: Call) -> Response:
    """A page of messages in sequence order: newest by default, ``after`` a seq to
    catch up, ``before`` a seq for older history (audited as an opening)."""
    q: MessagesQuery = call.query
    return json_response(await service.list_messages(
        call.db, chat_of(call.request), call.actor, call.path_int(), after=q.after, before=q.before,
        limit=q.limit, now=call.deps.clock()))


async def send(call: Call) -> Response:
    """Send a message; answered once it is stored. A resend with the same
    ``client_id`` is not stored again: 200 with the first id and seq."""
    data: SendIn = call.body
    if data.attachments:
        stored = await attachments.send_with_files(
            call.db, chat_of(call.request), call.actor, call.path_int(), body=data.body,
            client_id=data.client_id, attachment_ids=data.attachments, now=call.deps.clock())
    else:
        stored = await service.post_message(
            call.db, chat_of(call.request), call.actor, call.path_int(), body=data.body,
            client_id=data.client_id, now=call.deps.clock())
    out = service.sent_out(stored)
    return json_response(out, 201) if stored.created else json_response(out, 200, _REPLAYED)


async def mark_read(call: Call) -> Response:
    """You have read everything up to ``seq`` (receipts only move forward)."""
    return json_response(await service.mark_read(
        call.db, call.actor, call.path_int(), call.body.seq, now=call.deps.clock()))


async def archive(call: Call) -> Response:
    """Archive the conversation for yourself (messages are kept: they are part of the record)."""
    return json_response(await service.set_archived(
        call.db, call.actor, call.path_int(), True, now=call.deps.clock()))


async def unarchive(call: Call) -> Response:
    """Bring an archived conversation back to the inbox."""
    return json_response(await service.set_archived(
        call.db, call.actor, call.path_int(), False, now=call.deps.clock()))


async def close(call: Call) -> Response:
    """Close the conversation (providers and staff)."""
    return json_response(await manage.set_status(
        call.db, call.actor, call.path_int(), Status.closed, now=call.deps.clock()))


async def reopen(call: Call) -> Response:
    """Reopen a closed conversation (providers and staff)."""
    return json_response(await manage.set_status(
        call.db, call.actor, call.path_int(), Status.open, now=call.deps.clock()))


async def route(call: Call) -> Response:
    """Route the conversation to another provider (providers and staff)."""
    return json_response(await manage.route(
        call.db, call.actor, call.path_int(), call.body.provider_id, now=call.deps.clock()))


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The raw body, chunk by chunk, within the body timeout (408)."""
    stream = request.stream().__aiter__()
    deadline = asyncio.get_running_loop().time() + request.app.state.settings.body_timeout_seconds * 10
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout() from None
        yield chunk


async def upload(call: Call) -> Response:
    """Upload a file (the raw bytes as the body; ``name`` in the query) to attach
    to a message: PNG, JPEG, GIF, WebP or PDF, judged by its bytes. Refusals
    that need no body (role, rate, unsent-upload cap, uploads in progress) come
    before any of it is read; the body streams to disk, never whole in memory."""
    # The query is read here, not declared on the route: the route's body is the file.
    q = read_query(call.request, UploadQuery)
    chat = chat_of(call.request)
    limit = call.deps.settings.chat_attachment_max_bytes
    declared_header = call.request.headers.get("content-length", "")
    declared = int(declared_header) if declared_header.isdigit() else None
    if declared is not None and declared > limit:
        raise attachments.too_large(declared, limit)
    # No transaction stays open while the bytes arrive (admit_upload commits).
    await attachments.admit_upload(call.db, chat, call.actor, declared=declared or 0)
    with chat.upload_slot(call.actor.user_id):
        received, kind = await attachments.receive(_body(call.request), chat.files, limit=limit,
                                                   declared=declared)
        return json_response(await attachments.upload(
            call.db, chat, call.actor, name=q.name, received=received, kind=kind,
            now=call.deps.clock()), 201)


async def download(call: Call) -> Response:
    """Download an attached file (the conversation's members only; audited)."""
    row, files = await attachments.download(call.db, chat_of(call.request), call.actor, call.path_int())
    path = files.path(row.key)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("This file is no longer available.")
    return FileResponse(path, media_type=row.content_type, filename=row.name,
                        content_disposition_type="attachment", headers={
                            "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store",
                            "Content-Security-Policy": "default-src 'none'; sandbox"})


_T = "messaging"
_ONE = "/conversations/{id:int}"

routes: list[BaseRoute] = [
    ApiRoute("/conversations", list_conversations, methods=["GET"], query=ListQuery,
             response=ConversationList, tag=_T),
    ApiRoute("/conversations", start, methods=["POST"], body=StartIn, response=StartedOut,
             status_code=201, tag=_T),
    ApiRoute("/conversations/compose-info", compose_info, methods=["GET"], response=ComposeInfoOut,
             tag=_T),
    ApiRoute("/conversations/unread", unread, methods=["GET"], response=UnreadOut, tag=_T),
    ApiRoute("/conversations/route-targets", route_targets, methods=["GET"], response=ProviderOut,
             response_list=True, tag=_T),
    ApiRoute("/conversations/attachments", upload, methods=["POST"], response=AttachmentOut,
             status_code=201, tag=_T),
    ApiRoute("/conversations/attachments/{id:int}", download, methods=["GET"], tag=_T),
    ApiRoute(_ONE, get_conversation, methods=["GET"], response=ConversationOut, tag=_T),
    ApiRoute(_ONE + "/messages", list_messages, methods=["GET"], query=MessagesQuery,
             response=MessagesOut, tag=_T),
    ApiRoute(_ONE + "/messages", send, methods=["POST"], body=SendIn, response=SentOut,
             status_code=201, tag=_T),
    ApiRoute(_ONE + "/read", mark_read, methods=["POST"], body=ReadIn, response=ReadOut, tag=_T),
    ApiRoute(_ONE + "/archive", archive, methods=["POST"], response=ConversationOut, tag=_T),
    ApiRoute(_ONE + "/unarchive", unarchive, methods=["POST"], response=ConversationOut, tag=_T),
    ApiRoute(_ONE + "/close", close, methods=["POST"], response=ConversationOut, tag=_T),
    ApiRoute(_ONE + "/reopen", reopen, methods=["POST"], response=ConversationOut, tag=_T),
    ApiRoute(_ONE + "/route", route, methods=["POST"], body=RouteIn, response=ConversationOut, tag=_T),
]
