"""The data directory is the server user's alone: directories 0700, files 0600.

It holds the SQLite database and its ``-wal``/``-shm`` files (patient records),
outbox mail (live activation and reset links), the audit head and the secret
key. Two layers keep other local users out, whoever starts the server:

- the ``rtc-server`` command sets ``umask 077`` at start-up (:func:`restrict_umask`),
  so everything it and SQLite create is owner-only;
- code that creates the data dir or a file in it does so explicitly private
  (:func:`ensure_private_dir`, :func:`create_private_file`,
  :func:`write_private_file`), so an app built by a test or an embedder, under
  any umask, gets the same modes.

An existing directory that others can read is left as the operator made it (a
deliberate group, a backup user) but named in a warning at every start.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid
from pathlib import Path

log = logging.getLogger("rtc_server.datadir")

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def restrict_umask() -> int:
    """Make every file this process creates owner-only; returns the previous umask."""
    return os.umask(0o077)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents with mode 0700 (whatever the
    umask); warn when an existing directory is open to group or others."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # another process made it first; checked below
        os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    if path.is_dir():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077 and path not in missing:
            log.warning(
                "data directory %s is open to other users (mode %o); run: chmod 700 %s",
                path, mode, path,
            )
    return path


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists. Done for the SQLite
    database before SQLite opens it: its ``-wal`` and ``-shm`` files take the
    database file's mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def prepare_sqlite_file(database: str | None) -> None:
    """Create the SQLite database file 0600 before SQLite does (``database`` as
    in ``engine.url.database``); nothing for an in-memory or URI database."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.parent.is_dir():
        create_private_file(path)


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, mode 0600 (a reader never sees
    half a file; concurrent writers each use their own temporary file)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
