"""Attachment files on disk, and what kind of file a byte string is.

- Files live under ``data_dir/attachments/`` (0700), one file per upload
  (0600), named by a random key: never the user's file name, never under the
  web root, so nothing uploaded can be served as a page or a script.
- The kind is judged from the bytes (magic numbers), never from the name or
  the Content-Type the client sent: a ``.png`` holding HTML is refused, a
  ``.png`` holding a PDF is a PDF. Only kinds a browser treats as inert
  downloads are accepted (PNG, JPEG, GIF, WebP, PDF).
- Disk work runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rtc_server.datadir import PRIVATE_FILE_MODE, ensure_private_dir


@dataclass(frozen=True, slots=True)
class Kind:
    content_type: str
    extension: str
    label: str


PNG = Kind("image/png", ".png", "PNG image")
JPEG = Kind("image/jpeg", ".jpg", "JPEG image")
GIF = Kind("image/gif", ".gif", "GIF image")
WEBP = Kind("image/webp", ".webp", "WebP image")
PDF = Kind("application/pdf", ".pdf", "PDF document")

#: What the page says is accepted.
ACCEPTED = "PNG, JPEG, GIF or WebP images, or PDF documents"
#: Content types accepted (the page's ``accept`` list).
ACCEPTED_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")
#: Extensions each kind is known by (a download keeps the user's name when it fits the kind).
_EXTENSIONS = {PNG: (".png",), JPEG: (".jpg", ".jpeg"), GIF: (".gif",), WEBP: (".webp",), PDF: (".pdf",)}


def sniff(data: bytes) -> Kind | None:
    """The kind of file ``data`` is, from its first bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    return None


def kind_of(content_type: str) -> Kind | None:
    return next((k for k in _EXTENSIONS if k.content_type == content_type), None)


def clean_name(name: str, kind: Kind, *, limit: int = 200) -> str:
    """The name to show and to offer for the download: the last path part of what
    the uploader called it, with an extension that matches the bytes (a PDF
    called ``scan.png`` is offered as ``scan.png.pdf``, so it opens as what it is)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip().strip(".") or "attachment"
    base = "".join(ch for ch in base if ch.isprintable())
    if not base.lower().endswith(_EXTENSIONS[kind]):
        base = base[: limit - len(kind.extension)] + kind.extension
    return base[-limit:] if len(base) > limit else base


class NoRoom(Exception):
    """The attachment directory's file system is below its free-space floor."""


class Incoming:
    """An upload being received, written chunk by chunk (in a thread) to a new
    private file under its final key; ``discard`` removes it."""

    def __init__(self, files: AttachmentFiles, key: str, out: BinaryIO) -> None:
        self.files = files
        self.key = key
        self.size = 0
        self._out = out

    async def write(self, chunk: bytes) -> None:
        await asyncio.to_thread(self._out.write, chunk)
        self.size += len(chunk)

    async def finish(self) -> None:
        await asyncio.to_thread(self._out.close)

    async def discard(self) -> None:
        def drop() -> None:
            self._out.close()
            self.files.path(self.key).unlink(missing_ok=True)

        await asyncio.to_thread(drop)


class AttachmentFiles:
    """The attachment directory of one data dir. Nothing new is written while
    its file system has less than ``min_free_bytes`` free (``NoRoom``)."""

    def __init__(self, root: Path, *, min_free_bytes: int = 0) -> None:
        self.root = root
        self.min_free_bytes = min_free_bytes

    def _check_room(self, adding: int = 0) -> None:
        if self.min_free_bytes <= 0:
            return
        st = os.statvfs(self.root)
        if st.f_bavail * st.f_frsize - adding < self.min_free_bytes:
            raise NoRoom()

    async def begin(self) -> Incoming:
        """A new private file to receive an upload into (``NoRoom`` below the floor)."""
        return await asyncio.to_thread(self._begin)

    def _begin(self) -> Incoming:
        ensure_private_dir(self.root)
        self._check_room()
        key = secrets.token_hex(16)
        fd = os.open(self.path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        return Incoming(self, key, os.fdopen(fd, "wb"))

    async def has_room(self, adding: int) -> bool:
        try:
            await asyncio.to_thread(self._check_room, adding)
        except NoRoom:
            return False
        return True

    def path(self, key: str) -> Path:
        if not key.isalnum():  # keys are hex we made; never a path
            raise ValueError("bad attachment key")
        return self.root / key

    async def save(self, data: bytes) -> str:
        """Write ``data`` to a new private file; its key."""
        return await asyncio.to_thread(self._save, data)

    def _save(self, data: bytes) -> str:
        ensure_private_dir(self.root)
        self._check_room(len(data))
        key = secrets.token_hex(16)
        fd = os.open(self.path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except BaseException:
            self.path(key).unlink(missing_ok=True)
            raise
        return key

    async def read(self, key: str) -> bytes | None:
        """The file's bytes, or None when it is gone."""
        return await asyncio.to_thread(self._read, key)

    def _read(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    async def older_than(self, cutoff: float) -> list[str]:
        """Keys of the files last written before ``cutoff`` (a POSIX time)."""
        def scan() -> list[str]:
            found = []
            try:
                entries = list(os.scandir(self.root))
            except FileNotFoundError:
                return []
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    if entry.name.isalnum() and entry.is_file(follow_symlinks=False) \
                            and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        found.append(entry.name)
            return found

        return await asyncio.to_thread(scan)

    async def delete(self, keys: list[str]) -> None:
        def remove() -> None:
            for key in keys:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    self.path(key).unlink()

        await asyncio.to_thread(remove)
