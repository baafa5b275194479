"""Errors → WebSocket replies; the only place that decides them
(``http_errors.py`` is its HTTP twin). Codes are listed in docs/protocol.md.

A frame the server understood but will not carry out gets an error frame,
``{"type":"error","code":...,"message":...,"ref":<the client's ref>}``, and
the socket stays open. A breach of policy closes the socket with a code::

    DomainError             reply
    ├── InvalidInput        error frame  bad_frame  "<field>: <reason>"
    ├── NotFound            error frame  not_found
    ├── Conflict            error frame  conflict
    ├── Gone                error frame  gone
    ├── (any other)         error frame  its code
    ├── Unauthorized        close 4401   the session ended; sign in again
    ├── Forbidden           close 4403
    ├── PayloadTooLarge     close 1009
    └── RateLimited         close 1008
    BrokerUnavailable       close 1013   try again later
    anything else           close 1011   logged with its traceback; the client
                                         gets no detail

The socket layer itself closes with 1003 (a binary frame), 1008 (a flood of
frames), 1009 (a frame over the endpoint's limit) and 4008 (a client too slow
to read what it is sent: it reconnects and catches up).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pydantic import ValidationError

from rtc_server.broker.base import BrokerUnavailable
from rtc_server.errors import (
    DomainError,
    Forbidden,
    InvalidInput,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
)

log = logging.getLogger("rtc_server.ws_errors")

CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013
#: The client did not read fast enough: its outbox overflowed. Reconnect and catch up.
CLOSE_TOO_SLOW = 4008
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403

#: Longest ``ref`` echoed back to a client.
MAX_REF = 64


@dataclass(frozen=True, slots=True)
class Reply:
    """What the socket does about an error: send ``frame`` and stay open, or close."""

    frame: str | None = None
    close: int | None = None
    reason: str = ""


def error_frame(code: str, message: str, ref: str | None = None) -> str:
    return json.dumps({"type": "error", "code": code, "message": message, "ref": ref},
                      separators=(",", ":"))


def bad_frame(exc: ValidationError, ref: str | None) -> str:
    """The error frame for a frame that failed validation, naming the field."""
    err = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or "frame"
    return error_frame("bad_frame", f"{field}: {err['msg']}"[:200], ref)


_CLOSES: tuple[tuple[type[BaseException], int, str], ...] = (
    (Unauthorized, CLOSE_UNAUTHENTICATED, "session ended"),
    (Forbidden, CLOSE_FORBIDDEN, "forbidden"),
    (PayloadTooLarge, CLOSE_TOO_BIG, "too big"),
    (RateLimited, CLOSE_POLICY, "rate limit"),
    (BrokerUnavailable, CLOSE_TRY_LATER, "try again later"),
)


def reply_to(exc: BaseException, *, ref: str | None, where: str) -> Reply:
    """The reply for ``exc`` raised while handling a frame on ``where`` (a
    path, for the log line). Unexpected errors are logged here, once."""
    for kind, code, reason in _CLOSES:
        if isinstance(exc, kind):
            return Reply(close=code, reason=reason)
    if isinstance(exc, InvalidInput):
        field, message = exc.fields[0]
        return Reply(frame=error_frame("bad_frame", f"{field}: {message}", ref))
    if isinstance(exc, DomainError):
        return Reply(frame=error_frame(exc.code, exc.message, ref))
    log.error("unhandled %s on %s", type(exc).__name__, where, exc_info=exc)
    return Reply(close=CLOSE_INTERNAL, reason="internal error")
