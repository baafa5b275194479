"""A floor under the response time of answers that must not tell anything.

Register, resend activation, forgot password and forgot username answer the
same whatever was found, but finding something means more database work (a
token, an audit row, a user row). ``response_floor`` pads such a request to at
least ``Settings.response_floor_seconds`` from its start, plus a little random
jitter, so the extra work does not show in the time either. (``ApiRoute(...,
floor=True)`` applies it to a whole handler.)

Answers that depend on the input alone (``InvalidInput``: a 422 naming a
field) are not padded: their timing tells nothing the body does not. A
cancelled request is not padded either.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from rtc_server.errors import InvalidInput

#: The default floor (``Settings.response_floor_seconds`` is the one in force).
MIN_RESPONSE_SECONDS = 0.4
#: Up to this much more, at random, so the floor itself is not a sharp edge.
JITTER_SECONDS = 0.05

_request_floor: ContextVar[float | None] = ContextVar("rtc_response_floor", default=None)


@contextlib.contextmanager
def floor_for_request(seconds: float) -> Iterator[None]:
    """Make ``seconds`` the floor for ``response_floor()`` calls in this request
    (``api.ApiRoute`` sets it from the settings)."""
    token = _request_floor.set(seconds)
    try:
        yield
    finally:
        _request_floor.reset(token)


async def _pad_until(deadline: float, jitter_max: float) -> None:
    loop = asyncio.get_running_loop()
    jitter = secrets.randbelow(1000) / 1000 * jitter_max
    delay = deadline + jitter - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


@asynccontextmanager
async def response_floor(seconds: float | None = None) -> AsyncIterator[None]:
    """Use as ``async with response_floor(settings.response_floor_seconds):``
    around all of a handler's work (without an argument: the request's setting)."""
    if seconds is None:
        seconds = _request_floor.get()
        if seconds is None:
            seconds = MIN_RESPONSE_SECONDS
    jitter_max = JITTER_SECONDS if seconds > 0 else 0.0
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        yield
    except InvalidInput:
        raise
    except Exception:
        await _pad_until(deadline, jitter_max)
        raise
    await _pad_until(deadline, jitter_max)
