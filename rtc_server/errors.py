"""Domain exceptions, raised by services and mapped to HTTP/WebSocket replies
in one place (``rtc_server.http_errors``)::

    DomainError (code, message)
    ├── InvalidInput      422  bad field(s); names each field
    ├── Unauthorized      401  no valid session / bad credentials
    ├── Forbidden         403  signed in, not allowed (never used to hide existence)
    ├── NotFound          404  absent, or not yours (ids must not leak)
    ├── RequestTimeout    408  the request body did not arrive in time
    ├── Conflict          409  uniqueness / state clash
    ├── Gone              410  expired or used token
    ├── PayloadTooLarge   413  request body over the limit
    ├── UnsupportedMediaType 415  a body that is not JSON
    └── RateLimited       429  throttled; retry_after seconds

A refusal raised through ``Actor.require``/``require_role`` (``auth.actor``)
carries a ``Denial``: whoever maps the error to a reply (``api.ApiRoute`` for
HTTP) first writes it to the audit log as outcome ``denied``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Denial:
    """Who was refused what; ``action`` None lets the transport name it."""

    action: str | None
    actor_id: int | None
    actor_role: str | None
    resource: str | None = None
    patient_id: int | None = None
    request_id: str | None = None
    ip: str | None = None


class DomainError(Exception):
    status = 400
    code = "bad_request"
    message = "The request could not be processed."
    #: Set on refusals that must be audited (see the module docstring).
    denial: Denial | None = None

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.message
        if code:
            self.code = code
        super().__init__(self.message)


class InvalidInput(DomainError):
    status = 422
    code = "validation_error"
    message = "Some fields need attention."

    def __init__(self, field: str, message: str) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = [(field, message)]

    @classmethod
    def many(cls, fields: Iterable[tuple[str, str]]) -> InvalidInput:
        items = list(fields)
        exc = cls(*items[0])
        exc.fields = items
        return exc


class Unauthorized(DomainError):
    status = 401
    code = "unauthenticated"
    message = "Please sign in."


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    message = "You are not allowed to do that."


class NotFound(DomainError):
    status = 404
    code = "not_found"
    message = "Not found."


class RequestTimeout(DomainError):
    status = 408
    code = "body_timeout"
    message = "The request body did not arrive in time."


class Conflict(DomainError):
    status = 409
    code = "conflict"
    message = "That conflicts with the current state."


class Gone(DomainError):
    status = 410
    code = "gone"
    message = "That link has expired or was already used."


class PayloadTooLarge(DomainError):
    status = 413
    code = "too_large"
    message = "The request body is too large."


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    message = "Send the request body as JSON (Content-Type: application/json)."


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    message = "Too many attempts. Please wait and try again."

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after
