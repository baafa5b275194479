"""Coalescing of "a new message is waiting" notices, without I/O.

A busy conversation must not send its members one notice per message: a
notice per (person, conversation) goes out at once, then at most one per
``window`` seconds, and the latest sequence always follows (a trailing
notice), so an unread count never stays stale.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: Remember keys this many windows after their last notice at most.
_KEEP_WINDOWS = 4


class Coalescer(Generic[K]):
    def __init__(self, window: float) -> None:
        self.window = window
        self._sent_at: dict[K, float] = {}
        self._pending: dict[K, int] = {}

    def offer(self, key: K, value: int, now: float) -> bool:
        """True: send ``value`` for ``key`` now. False: it is held and comes out
        of ``due`` once the window has passed (a later offer replaces it)."""
        last = self._sent_at.get(key)
        if last is None or now - last >= self.window:
            self._sent_at[key] = now
            self._pending.pop(key, None)
            return True
        held = self._pending.get(key)
        if held is None or value > held:
            self._pending[key] = value
        return False

    def next_due(self) -> float | None:
        """When the earliest held notice may go (None: nothing is held)."""
        if not self._pending:
            return None
        return min(self._sent_at[key] for key in self._pending) + self.window

    def due(self, now: float) -> list[tuple[K, int]]:
        """Held notices whose window has passed; they count as sent now."""
        out = [(k, v) for k, v in self._pending.items() if now - self._sent_at[k] >= self.window]
        for key, _ in out:
            del self._pending[key]
            self._sent_at[key] = now
        if len(self._sent_at) > 1024:
            horizon = self.window * _KEEP_WINDOWS
            self._sent_at = {k: t for k, t in self._sent_at.items()
                             if k in self._pending or now - t < horizon}
        return out
