"""Conversation catch-up as a state machine without I/O.

One ``Catchup`` per (socket, conversation) decides which messages that
socket gets, so that it gets every message after the sequence it resumed
from exactly once and in order, whatever mix of replayed rows and live
announcements arrives:

- it starts **replaying**: ``start()`` asks for the rows after ``since``;
- ``rows(page, complete)`` takes messages in sequence order (from the
  database or the instance's cache) and returns those to send: it drops any
  seq at or below what it already sent (a row replayed and also announced
  live) and stops at a hole (a later seq whose predecessor it has not seen);
- ``announced(seq)`` says a message exists (live events carry ids and
  sequences only). Replaying, it just raises the known end; **live**, it asks
  for what is missing;
- ``resync()`` says announcements may have been lost (the broker
  reconnected): it asks the database again even if it looks complete.

It goes live once a complete page leaves nothing known unsent, and says so
once (``became_live``) so the socket can tell the client it is caught up.
Sequences are gap-free and commit-ordered per conversation (``chat.writer``),
so "seq N exists" means every seq below N exists and can be fetched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class HasSeq(Protocol):
    @property
    def seq(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Fetch:
    """Fetch the messages after ``after``; ``upto`` is the highest seq known to
    exist (None: unknown, ask the database)."""

    after: int
    upto: int | None


@dataclass(frozen=True, slots=True)
class Step:
    """What to do after an input: send ``send`` (in order), then ``fetch`` if set."""

    send: list
    fetch: Fetch | None = None
    became_live: bool = False


class Catchup:
    __slots__ = ("delivered", "known", "live", "stale", "waiting")

    def __init__(self, since: int) -> None:
        #: The highest seq sent to the client (or that it said it had).
        self.delivered = since
        #: The highest seq known to exist.
        self.known = since
        #: Replay finished and nothing known is unsent.
        self.live = False
        #: A fetch is outstanding (its answer comes through ``rows``).
        self.waiting = False
        #: Announcements may have been lost while waiting: ask the database again.
        self.stale = False

    def start(self) -> Fetch:
        self.waiting = True
        return Fetch(self.delivered, None)

    def announced(self, seq: int) -> Fetch | None:
        if seq > self.known:
            self.known = seq
        if self.waiting or self.known <= self.delivered:
            return None
        self.waiting = True
        return Fetch(self.delivered, self.known)

    def resync(self) -> Fetch | None:
        if self.waiting:
            self.stale = True
            return None
        self.waiting = True
        return Fetch(self.delivered, None)

    def rows(self, page: Iterable[HasSeq], *, complete: bool) -> Step:
        """Messages in seq order answering the outstanding fetch (or offered
        from the cache); ``complete``: nothing committed lies beyond them."""
        out = []
        for row in page:
            seq = row.seq
            if seq <= self.delivered:
                continue  # already sent
            if seq != self.delivered + 1:
                complete = False  # a hole: ask again from here
                break
            out.append(row)
            self.delivered = seq
        if self.delivered > self.known:
            self.known = self.delivered
        if not complete or self.stale or self.known > self.delivered:
            upto = None if (self.stale or not complete) else self.known
            self.stale = False
            self.waiting = True
            return Step(out, Fetch(self.delivered, upto))
        self.waiting = False
        became_live = not self.live
        self.live = True
        return Step(out, None, became_live)
