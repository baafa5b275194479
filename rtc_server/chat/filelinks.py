"""Tying uploads to the message that carries them, inside the message's own
transaction (``chat.attachments``, ``service.start_conversation``). An upload
is its uploader's until one message takes it; a second message racing for it
finds it taken."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server.chat.files import AttachmentFiles
from rtc_server.chat.models import Attachment
from rtc_server.errors import InvalidInput

_A = Attachment.__table__.c  # type: ignore[attr-defined]
_GONE = "An attached file is no longer available; attach it again."


async def attach(db: AsyncSession, user_id: int, ids: list[int]) -> str | None:
    """The JSON the message stores for uploads ``ids`` of ``user_id`` (in the
    caller's transaction, before the message is inserted); None for none.
    422 naming ``attachments`` when one is not theirs or is already used."""
    if not ids:
        return None
    unique = list(dict.fromkeys(ids))
    rows = {r.id: r for r in (await db.exec(
        select(_A.id, _A.name, _A.content_type, _A.size)
        .where(_A.id.in_(unique), _A.uploader_id == user_id, _A.message_id.is_(None)))).all()}
    if len(rows) != len(unique):
        raise InvalidInput("attachments", _GONE)
    return json.dumps([{"id": i, "name": rows[i].name, "content_type": rows[i].content_type,
                        "size": rows[i].size} for i in unique], separators=(",", ":"), ensure_ascii=False)


async def link(db: AsyncSession, user_id: int, ids: list[int], *, conversation_id: int,
               message_id: int) -> None:
    """Tie the uploads to their message (same transaction as ``attach``); a
    second message racing for the same upload finds it taken (422)."""
    unique = list(dict.fromkeys(ids))
    linked = (await db.exec(update(Attachment.__table__).where(  # type: ignore[arg-type]
        _A.id.in_(unique), _A.uploader_id == user_id, _A.message_id.is_(None))
        .values(message_id=message_id, conversation_id=conversation_id))).rowcount
    if linked != len(unique):
        raise InvalidInput("attachments", _GONE)


async def sweep_unused(db: AsyncSession, files: AttachmentFiles, *, older_than: datetime) -> int:
    """Delete uploads no message carries that are older than ``older_than``
    (rows first, then files: a file without a row is never served), then files
    older than that with no row at all (a crash between writing the file and
    committing its row; rows gone with their conversation). The count of files."""
    keys = list((await db.exec(delete(Attachment.__table__).where(  # type: ignore[arg-type]
        _A.message_id.is_(None), _A.created_at < older_than).returning(_A.key))).scalars())
    await db.commit()
    swept = set(keys)
    old = await files.older_than(older_than.timestamp())
    for start in range(0, len(old), _CHUNK):
        some = old[start:start + _CHUNK]
        known = set((await db.exec(select(_A.key).where(_A.key.in_(some)))).scalars())
        keys.extend(k for k in some if k not in known and k not in swept)
    await db.commit()
    if not keys:
        return 0
    await files.delete(keys)
    return len(keys)


_CHUNK = 500


def unused_cutoff(now: datetime, hours: float) -> datetime:
    return now - timedelta(hours=hours)
