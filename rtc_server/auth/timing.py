"""A floor under the response time of answers that must not tell anything.

Register, resend activation, forgot password and forgot username answer the
same whatever was found, but finding something means more database work (a
token, an audit row, a user row). ``response_floor`` pads such a request to at
least ``MIN_RESPONSE_SECONDS`` from its start, plus a little random jitter, so
the extra work does not show in the time either.

Answers that depend on the input alone (``InvalidInput``: a 422 naming a
field) are not padded: their timing tells nothing the body does not. A
cancelled request is not padded either.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rtc_server.errors import InvalidInput

#: Every padded answer takes at least this long (tests rely on it).
MIN_RESPONSE_SECONDS = 0.4
#: Up to this much more, at random, so the floor itself is not a sharp edge.
JITTER_SECONDS = 0.05


async def _pad_until(deadline: float) -> None:
    loop = asyncio.get_running_loop()
    jitter = secrets.randbelow(1000) / 1000 * JITTER_SECONDS
    delay = deadline + jitter - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


@asynccontextmanager
async def response_floor(seconds: float = MIN_RESPONSE_SECONDS) -> AsyncIterator[None]:
    """Use as ``async with response_floor():`` around all of a handler's work."""
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        yield
    except InvalidInput:
        raise
    except Exception:
        await _pad_until(deadline)
        raise
    await _pad_until(deadline)
