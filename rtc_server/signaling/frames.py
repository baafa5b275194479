"""The frames of ``/ws/v1/visit``: a pydantic discriminated union on ``type``
(client → server), and the JSON the server sends (docs/visits.md).

SDP and ICE candidates are checked for shape and size only, never parsed
further: the server relays them to the named peer and reads nothing else.
A malformed one gets ``bad_frame`` naming the field; the socket stays open.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from rtc_server.types import DbId
from rtc_server.ws_errors import MAX_REF

#: Longest SDP accepted. A browser's offer with audio, video and a screen share
#: is 6 to 12 KB; 32 KB leaves room for simulcast without inviting abuse.
SDP_MAX = 32 * 1024
SDP_MAX_LINES = 1000
#: Longest ICE candidate line (a browser's are about 100 to 200 characters).
CANDIDATE_MAX = 512
#: The socket's frame limit: an SDP plus its envelope.
FRAME_MAX = SDP_MAX + 4 * 1024

_PEER = r"^[A-Za-z0-9_-]{16,32}$"
_SDP_LINE = re.compile(r"[a-z]=[\x20-\x7e]*")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def _sdp(value: str) -> str:
    lines = value.replace("\r\n", "\n").rstrip("\n").split("\n")
    if not lines or lines[0] != "v=0":
        raise ValueError("must be SDP starting with v=0")
    if len(lines) > SDP_MAX_LINES:
        raise ValueError("has too many lines")
    for line in lines:
        if not _SDP_LINE.fullmatch(line):
            raise ValueError("has a line that is not <letter>=<printable text>")
    if not any(line.startswith("m=") for line in lines):
        raise ValueError("has no media section")
    return value


def _candidate(value: str) -> str:
    if not _PRINTABLE.fullmatch(value):
        raise ValueError("must be printable ASCII")
    if value and not value.startswith("candidate:"):
        raise ValueError('must start with "candidate:" (or be empty: end of candidates)')
    return value


PeerId = Annotated[str, Field(pattern=_PEER)]
Sdp = Annotated[str, Field(min_length=1, max_length=SDP_MAX), AfterValidator(_sdp)]
Ref = Annotated[str | None, Field(default=None, max_length=MAX_REF)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: Ref = None


class IceCandidate(BaseModel):
    """An ``RTCIceCandidateInit`` as a browser serialises it."""

    model_config = ConfigDict(extra="forbid")
    candidate: Annotated[str, Field(max_length=CANDIDATE_MAX), AfterValidator(_candidate)]
    sdpMid: Annotated[str, Field(max_length=64, pattern=r"^[\x21-\x7e]*$")] | None = None
    sdpMLineIndex: Annotated[int, Field(ge=0, le=127)] | None = None
    usernameFragment: Annotated[str, Field(max_length=256, pattern=r"^[\x21-\x7e]*$")] | None = None


class Watch(_Frame):
    """Follow a visit's waiting room and room events (patients waiting, the host)."""

    type: Literal["watch"]
    visit: DbId


class WatchQueue(_Frame):
    """Follow a provider's waiting room (the console); staff name the provider."""

    type: Literal["watch_queue"]
    practitioner_id: DbId | None = None


class Join(_Frame):
    """Enter the visit's call room (admitted participants only). ``resume``: the
    peer id this page had before its socket dropped; the call carries on under
    it (no renegotiation) if it is still this participant's."""

    type: Literal["join"]
    visit: DbId
    resume: PeerId | None = None


class Offer(_Frame):
    type: Literal["offer"]
    to: PeerId
    sdp: Sdp


class Answer(_Frame):
    type: Literal["answer"]
    to: PeerId
    sdp: Sdp


class Ice(_Frame):
    """A trickled ICE candidate for ``to``; ``candidate: null`` ends the trickle."""

    type: Literal["ice"]
    to: PeerId
    candidate: IceCandidate | None


class Leave(_Frame):
    """Leave the call room (the socket stays open; ``join`` again to come back)."""

    type: Literal["leave"]


class Ping(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[
    Watch | WatchQueue | Join | Offer | Answer | Ice | Leave | Ping, Field(discriminator="type")
]
client_frames: TypeAdapter[Any] = TypeAdapter(ClientFrame)

Relayed = Offer | Answer | Ice


def relayed_event(frame: Relayed, sender: str) -> dict[str, Any]:
    """What ``to`` receives: the frame with ``from`` instead of ``to`` (and no ``ref``)."""
    if isinstance(frame, Ice):
        candidate = frame.candidate.model_dump(exclude_none=True) if frame.candidate else None
        return {"type": "ice", "from": sender, "candidate": candidate}
    return {"type": frame.type, "from": sender, "sdp": frame.sdp}


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))
