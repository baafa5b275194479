"""Passing an approved prescription to a pharmacy, behind a small pluggable interface.

``PrescriptionSender`` is what the refill service calls once a provider has
approved a request. The default, ``OutboxPrescriptionSender``, does **not**
reach any pharmacy: it is a mock of the pharmacy network (in the US,
Surescripts carrying NCPDP SCRIPT ``NewRx`` messages), the outside world that
cannot exist in this deployment. It writes each prescription as a JSON file
into ``<data dir>/outbox/pharmacy/`` (directory 0700, files 0600: the file
holds health data, as a real prescription does), where a person or a test can
read it. A deployment connected to a network supplies its own sender in its
place: ``app.state.prescription_sender = MySender(...)`` before start-up.

Every message carries ``message_id`` (``refill-<id>``): a network or pharmacy
that receives the same id twice (a retry after a crash between sending and
recording it) drops the second. The log names only the refill id, never the
patient, the medication or the pharmacy.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from rtc_server.datadir import ensure_private_dir, write_private_file

log = logging.getLogger("rtc_server.pharmacy")

#: Where the default sender writes, under the data dir's outbox.
FOLDER = "pharmacy"


@dataclass(frozen=True)
class Prescription:
    """What a pharmacy needs to fill an approved refill."""

    message_id: str
    written_at: str  # ISO 8601, UTC
    pharmacy: dict[str, Any]  # name, ncpdp_id, phone, fax, address
    patient: dict[str, Any]  # name, birth_date, gender, address, phone
    prescriber: dict[str, Any]  # name, npi, phone
    medication: dict[str, Any]  # name, code, code_system, dosage (the sig)
    quantity: int | None
    refills: int | None
    note: str | None  # the prescriber's note to the pharmacist


class SendFailed(Exception):
    """The network did not take the prescription; the refill stays approved and may be sent again."""


class PrescriptionSender(Protocol):
    async def send(self, prescription: Prescription) -> None:
        """Deliver ``prescription``; raise ``SendFailed`` (or any error) when it was not taken."""


class OutboxPrescriptionSender:
    """The default sender: a mock of the pharmacy network that writes each
    prescription to ``<outbox>/pharmacy/<message_id>.json`` instead of sending
    it. Nothing leaves the machine."""

    def __init__(self, outbox_dir: Path) -> None:
        self.folder = outbox_dir / FOLDER

    def _write(self, prescription: Prescription) -> None:
        ensure_private_dir(self.folder)
        path = self.folder / f"{prescription.message_id}.json"
        write_private_file(path, json.dumps(asdict(prescription), indent=2, ensure_ascii=False))

    async def send(self, prescription: Prescription) -> None:
        try:
            await anyio.to_thread.run_sync(self._write, prescription)
        except OSError as exc:
            raise SendFailed(type(exc).__name__) from exc
        log.info("wrote prescription %s to the pharmacy outbox", prescription.message_id)

    def sent(self) -> list[dict[str, Any]]:
        """Every prescription written so far, oldest first (for tests and the demo)."""
        if not self.folder.is_dir():
            return []
        paths = sorted(self.folder.glob("*.json"), key=lambda p: (os.stat(p).st_mtime_ns, p.name))
        return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def sender_for(state: Any, outbox_dir: Path) -> PrescriptionSender:
    """The app's sender (``app.state.prescription_sender``), else the outbox mock."""
    custom = getattr(state, "prescription_sender", None)
    return custom if custom is not None else OutboxPrescriptionSender(outbox_dir)
