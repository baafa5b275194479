"""Text messages (SMS), behind a small pluggable interface.

``SmsSender`` is what the reminder worker calls. The default, ``OutboxSmsSender``,
does **not** reach any phone: it is a mock of the SMS carrier (the outside world,
which cannot exist in this deployment) and writes each message as a JSON file
into ``<data dir>/outbox/sms/`` (readable by the server's user only), where a
person or a test can read it. A deployment with a real carrier supplies its own
``SmsSender`` (e.g. a Twilio or AWS SNS client) in its place.

Texts never carry health data (see ``reminders``); the log names only the kind
of message, never the number or the text.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Protocol

import anyio.to_thread

from rtc_server.db import utcnow

log = logging.getLogger("rtc_server.sms")


class SmsSender(Protocol):
    async def send(self, to: str, text: str, *, kind: str) -> None:
        """Send ``text`` to the phone number ``to``; raise on failure."""


class OutboxSmsSender:
    """The default sender: a mock of the carrier that writes each text to a file
    (``<outbox>/sms/<time>-<id>.json``) instead of sending it. Nothing leaves the machine."""

    def __init__(self, outbox_dir: Path) -> None:
        self.folder = outbox_dir / "sms"

    def _write(self, to: str, text: str, kind: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = utcnow()
        path = self.folder / f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.json"
        payload = {"to": to, "text": text, "kind": kind, "at": now.isoformat()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out)
        return path

    async def send(self, to: str, text: str, *, kind: str) -> None:
        await anyio.to_thread.run_sync(self._write, to, text, kind)
        log.info("wrote a %s text to the SMS outbox", kind)

    def sent(self) -> list[dict[str, str]]:
        """Every text written so far, oldest first (for tests and the demo)."""
        if not self.folder.is_dir():
            return []
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.folder.glob("*.json"))]
