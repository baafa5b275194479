"""Files in messages: upload, attach to a message, download. The rules.

- **Upload first, then send.** ``upload`` stores a file for its uploader
  alone; a message then names the upload ids (``send_with_files``, or the
  first message of ``service.start_conversation``). An upload no message
  carries stays its uploader's and is swept after
  ``chat_attachment_unused_hours`` (``sweep_unused``).
- **Judged by its bytes.** Only PNG, JPEG, GIF, WebP and PDF are kept
  (``files.sniff``): 415 naming ``file`` for anything else whatever its name
  or declared type; 413 naming ``file`` past ``chat_attachment_max_bytes``.
- **Refused before the body is read** where the refusal needs no body: the
  person's message rate, their cap of unsent uploads
  (``chat_attachment_unused_files``/``_bytes``, 429), their uploads still
  arriving (``chat_uploads_in_flight``, ``ChatRuntime.upload_slot``), a disk
  below ``chat_attachment_min_free_bytes`` (507). The body streams to its
  file (``receive``), judged from its first bytes; never whole in memory.
- **Members only.** A carried file follows its conversation's care-team rule
  (``access.may_access``); anyone else gets 404, like a file that does not
  exist, and the attempt is audited (``denied``). Every download is audited
  (``chat.attachment``), uploads too (``chat.upload``).
- **Numbered like any message.** A message with files is stored in one
  transaction of its own (the file links must commit with it, and such
  messages are rare): it takes the next sequence with
  ``UPDATE … SET last_seq = last_seq + 1`` under the conversation row's lock,
  so sequences stay gap-free and in commit order alongside the group writer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Role
from rtc_server.chat.access import load_access, may_access, who_is
from rtc_server.chat.filelinks import attach, link
from rtc_server.chat.files import ACCEPTED, AttachmentFiles, Incoming, Kind, NoRoom, clean_name, sniff
from rtc_server.chat.models import Attachment, Conversation, Member, Message, Status
from rtc_server.chat.runtime import ChatRuntime
from rtc_server.chat.service import check_send
from rtc_server.chat.shapes import AttachmentOut
from rtc_server.chat.writer import Stored
from rtc_server.config import Settings
from rtc_server.errors import Conflict, DomainError, InvalidInput, NotFound, RateLimited

_A = Attachment.__table__.c  # type: ignore[attr-defined]
_C = Conversation.__table__.c  # type: ignore[attr-defined]
_MB = Member.__table__.c  # type: ignore[attr-defined]
_MSG = Message.__table__.c  # type: ignore[attr-defined]


class FileTooLarge(InvalidInput):
    status = 413
    code = "file_too_large"


class FileTypeRefused(InvalidInput):
    status = 415
    code = "unsupported_file_type"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def too_large(size: int | None, limit: int) -> FileTooLarge:
    seen = f"; this one is {_mib(size)}" if size is not None else ""
    return FileTooLarge("file", f"A file can be at most {_mib(limit)}{seen}.")


class StorageFull(DomainError):
    status = 507
    code = "storage_full"
    message = "Files cannot be received right now; try again later."


def _unsent_refusal() -> RateLimited:
    err = RateLimited("You have too many files waiting to be sent; send or wait for them to "
                      "expire before uploading more.", retry_after=60)
    err.code = "too_many_unsent_uploads"
    return err


async def _check_unsent(db: AsyncSession, settings: Settings, user_id: int, adding: int) -> None:
    """429 ``too_many_unsent_uploads`` if one more upload of ``adding`` bytes would
    put ``user_id`` past their cap of uploads no message carries yet."""
    count, total = (await db.exec(select(func.count(), func.coalesce(func.sum(_A.size), 0)).where(
        _A.uploader_id == user_id, _A.message_id.is_(None)))).one()
    if count >= settings.chat_attachment_unused_files or \
            total + adding > settings.chat_attachment_unused_bytes:
        raise _unsent_refusal()


async def admit_upload(db: AsyncSession, chat: ChatRuntime, actor: Actor, *, declared: int) -> None:
    """Everything that can refuse an upload before its body is read: the role,
    the person's rate, their cap of unsent uploads (``declared`` bytes, 0 when
    unknown). Leaves no transaction open."""
    actor.require_role(Role.patient, Role.provider, Role.staff, action="chat.upload")
    if not chat.allow_message(actor.user_id):
        raise RateLimited("You are sending files too quickly; wait a moment.", retry_after=2)
    await _check_unsent(db, chat.deps.settings, actor.user_id, declared)
    await db.commit()


async def receive(incoming: AsyncIterator[bytes], files: AttachmentFiles, *, limit: int,
                  declared: int | None) -> tuple[Incoming, Kind]:
    """Stream an upload's body to a new private file, refusing as soon as it
    passes ``limit`` (413) or its first bytes are not an accepted kind (415),
    or an empty one (422). The caller keeps or discards the file."""
    if declared is not None and declared > limit:
        raise too_large(declared, limit)
    try:
        target = await files.begin()
    except NoRoom:
        raise StorageFull() from None
    head = b""
    kind: Kind | None = None
    try:
        async for chunk in incoming:
            if not chunk:
                continue
            if target.size + len(chunk) > limit:
                raise too_large(None, limit)
            if kind is None:
                head = (head + chunk)[:_HEAD]
                if len(head) >= _HEAD:
                    kind = _judge(head)
            await target.write(chunk)
        if target.size == 0:
            raise InvalidInput("file", "The file is empty.")
        if kind is None:
            kind = _judge(head)
        await target.finish()
    except BaseException:
        await target.discard()
        raise
    return target, kind


_HEAD = 16


def _judge(head: bytes) -> Kind:
    kind = sniff(head)
    if kind is None:
        raise FileTypeRefused("file", f"Only {ACCEPTED} can be attached; this file is none of these.")
    return kind


async def upload(
    db: AsyncSession, chat: ChatRuntime, actor: Actor, *, name: str, received: Incoming, kind: Kind,
    now: datetime,
) -> AttachmentOut:
    """Keep a received file for its uploader (until a message carries it);
    ``admit_upload`` and ``receive`` have judged it. Checked again against the
    unsent cap with its real size, and the disk's floor (507). Audited ``chat.upload``."""
    try:
        await _check_unsent(db, chat.deps.settings, actor.user_id, received.size)
        if not await chat.files.has_room(0):
            raise StorageFull()
        row = Attachment(key=received.key, uploader_id=actor.user_id, name=clean_name(name, kind),
                         content_type=kind.content_type, size=received.size, created_at=now)
        db.add(row)
        await db.flush()
        await audit.record(db, action="chat.upload", actor_id=actor.user_id, actor_role=str(actor.role),
                           patient_id=actor.patient_id, resource=f"attachment:{row.id}",
                           request_id=actor.meta.request_id, ip=actor.meta.ip)
        await db.commit()
    except BaseException:
        await db.rollback()
        await chat.files.delete([received.key])
        raise
    assert row.id is not None
    return AttachmentOut(id=row.id, name=row.name, content_type=row.content_type, size=row.size)


async def send_with_files(
    db: AsyncSession, chat: ChatRuntime, actor: Actor, conversation_id: int, *, body: str,
    client_id: str, attachment_ids: list[int], now: datetime,
) -> Stored:
    """Store a message carrying uploads (see the module docstring), deliver and
    announce it like any other. Idempotent on ``client_id`` like ``post_message``."""
    await check_send(db, chat, actor, conversation_id, now=now)
    earlier = await _earlier(db, actor.user_id, client_id, conversation_id)
    if earlier is not None:
        return earlier
    if not chat.allow_message(actor.user_id):
        raise RateLimited("You are sending messages too quickly; wait a moment.", retry_after=1)
    seq = (await db.exec(update(Conversation.__table__)  # type: ignore[arg-type]
                         .where(_C.id == conversation_id, _C.status == Status.open)
                         .values(last_seq=_C.last_seq + 1, last_message_at=now)
                         .returning(_C.last_seq))).scalar_one_or_none()
    if seq is None:
        await db.rollback()
        raise Conflict("This conversation is closed; start a new message instead.",
                       code="conversation_closed")
    try:
        files = await attach(db, actor.user_id, attachment_ids)
        message = Message(conversation_id=conversation_id, seq=seq, sender_id=actor.user_id,
                          client_id=client_id, body=body, created_at=now, attachments=files)
        db.add(message)
        await db.flush()
        assert message.id is not None
        await link(db, actor.user_id, attachment_ids, conversation_id=conversation_id, message_id=message.id)
        members = list((await db.exec(
            select(_MB.user_id).where(_MB.conversation_id == conversation_id))).scalars())
        await db.commit()
    except IntegrityError:  # the same client_id raced in on another request
        await db.rollback()
        earlier = await _earlier(db, actor.user_id, client_id, conversation_id)
        if earlier is None:
            raise Conflict("This client_id was already used.", code="client_id_reused") from None
        return earlier
    except BaseException:
        await db.rollback()
        raise
    stored = Stored(message.id, conversation_id, seq, actor.user_id, client_id, body, now, created=True,
                    sender_role=str(actor.role), attachments=files)
    await chat.stored_directly(stored, members)
    return stored


async def _earlier(db: AsyncSession, user_id: int, client_id: str, conversation_id: int) -> Stored | None:
    row = (await db.exec(select(_MSG.id, _MSG.conversation_id, _MSG.seq, _MSG.created_at).where(
        _MSG.sender_id == user_id, _MSG.client_id == client_id))).first()
    if row is None:
        return None
    if row.conversation_id != conversation_id:
        raise Conflict("This client_id was already used for another message.", code="client_id_reused")
    return Stored(row.id, conversation_id, row.seq, user_id, client_id, "", row.created_at, created=False)


async def download(db: AsyncSession, chat: ChatRuntime, actor: Actor, attachment_id: int
                   ) -> tuple[Attachment, AttachmentFiles]:
    """The file if ``actor`` may have it: its uploader before it is sent, the
    conversation's care team and patient after. Otherwise NotFound, audited
    as ``denied``. Each download is audited (``chat.attachment``)."""
    row = await db.get(Attachment, attachment_id)
    resource = f"attachment:{attachment_id}"
    if row is None:
        actor.require(False, action="chat.attachment", resource=resource, error=NotFound())
    assert row is not None
    patient_id = actor.patient_id
    if row.message_id is None:
        allowed = row.uploader_id == actor.user_id
    else:
        conv = await load_access(db, row.conversation_id or 0)
        allowed = conv is not None and may_access(await who_is(db, actor), conv)
        patient_id = conv.patient_id if conv is not None else None
    actor.require(allowed, action="chat.attachment", resource=resource, patient_id=patient_id,
                  error=NotFound())
    where = f"/conversation:{row.conversation_id}" if row.conversation_id else ""
    await audit.record(db, action="chat.attachment", actor_id=actor.user_id, actor_role=str(actor.role),
                       patient_id=patient_id, resource=resource + where,
                       request_id=actor.meta.request_id, ip=actor.meta.ip)
    await db.commit()
    return row, chat.files
