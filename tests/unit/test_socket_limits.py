"""Socket limits per user and per instance."""

from __future__ import annotations

from rtc_server.realtime.admission import SocketLimits


def test_limits_hold_per_user_and_in_total_and_free_on_release() -> None:
    limits = SocketLimits(per_user=2, total=3)
    assert limits.acquire(1) and limits.acquire(1)
    assert not limits.acquire(1)
    assert limits.acquire(2)
    assert not limits.acquire(3), "the instance total is reached"
    limits.release(1)
    assert limits.acquire(3)
    for user in (1, 2, 3):
        limits.release(user)
    assert limits.count == 0 and not limits.open
