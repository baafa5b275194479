"""The catch-up state machine and the unread-notice coalescer, without I/O:
replayed rows and live announcements in any interleaving give every message
after the resume point exactly once, in order."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from rtc_server.chat.catchup import Catchup, Fetch
from rtc_server.chat.notices import Coalescer


@dataclass(frozen=True)
class Row:
    seq: int


def rows(*seqs: int) -> list[Row]:
    return [Row(s) for s in seqs]


def test_resume_replays_then_goes_live_once() -> None:
    c = Catchup(since=3)
    assert c.start() == Fetch(3, None)
    step = c.rows(rows(4, 5), complete=True)
    assert [r.seq for r in step.send] == [4, 5] and step.fetch is None and step.became_live
    assert c.announced(6) == Fetch(5, 6)
    again = c.rows(rows(6), complete=True)
    assert [r.seq for r in again.send] == [6] and not again.became_live


def test_announcements_during_replay_are_fetched_after_it_not_lost() -> None:
    c = Catchup(since=0)
    c.start()
    assert c.announced(7) is None  # replaying: just noted
    step = c.rows(rows(1, 2, 3), complete=True)  # the read began before 4..7 committed
    assert [r.seq for r in step.send] == [1, 2, 3] and step.fetch == Fetch(3, 7)
    assert not c.live
    step = c.rows(rows(4, 5, 6, 7), complete=True)
    assert [r.seq for r in step.send] == [4, 5, 6, 7] and step.became_live


def test_rows_at_or_below_what_was_sent_are_dropped() -> None:
    c = Catchup(since=0)
    c.start()
    c.rows(rows(1, 2, 3), complete=True)
    assert c.announced(3) is None and c.announced(2) is None
    assert c.rows(rows(2, 3), complete=True).send == []


def test_a_hole_stops_delivery_and_asks_the_database_again() -> None:
    c = Catchup(since=0)
    c.start()
    step = c.rows(rows(1, 2, 4, 5), complete=True)
    assert [r.seq for r in step.send] == [1, 2] and step.fetch == Fetch(2, None)


def test_an_incomplete_page_asks_for_the_next_one() -> None:
    c = Catchup(since=10)
    c.start()
    step = c.rows(rows(11, 12), complete=False)
    assert step.fetch == Fetch(12, None) and not c.live


def test_a_broker_gap_rereads_the_database_even_while_a_read_is_in_flight() -> None:
    c = Catchup(since=0)
    c.start()
    assert c.resync() is None  # waiting: remembered
    step = c.rows(rows(1), complete=True)
    assert step.fetch == Fetch(1, None)  # the in-flight read may predate the gap
    assert c.rows([], complete=True).became_live
    assert c.resync() == Fetch(1, None)


@settings(max_examples=300, deadline=None, database=None)
@given(total=st.integers(min_value=0, max_value=40), since=st.integers(min_value=0, max_value=10),
       seed=st.integers(), page=st.integers(min_value=1, max_value=7))
def test_any_interleaving_delivers_each_message_after_since_exactly_once_in_order(
    total: int, since: int, seed: int, page: int,
) -> None:
    """Messages commit one by one (announced after commit); fetches are answered
    later from what had committed when they ran, a page at a time."""
    rnd = random.Random(seed)
    since = min(since, total)
    committed = 0
    c = Catchup(since)
    pending: list[Fetch] = [c.start()]
    got: list[int] = []
    while committed < total or pending:
        if committed < total and (not pending or rnd.random() < 0.5):
            committed += 1
            fetch = c.announced(committed)
            if fetch is not None:
                pending.append(fetch)
            continue
        fetch = pending.pop(0)
        # The read sees what had committed by now; it returns at most ``page`` rows.
        answer = rows(*range(fetch.after + 1, committed + 1))[:page]
        step = c.rows(answer, complete=len(answer) < page)
        got.extend(r.seq for r in step.send)
        if step.fetch is not None:
            pending.append(step.fetch)
    assert got == list(range(since + 1, total + 1))
    assert c.live and c.delivered == total


def test_notices_go_at_once_then_at_most_once_per_window_with_the_latest_value() -> None:
    n: Coalescer[str] = Coalescer(window=1.0)
    assert n.offer("maria/7", 1, now=0.0)
    assert not n.offer("maria/7", 2, now=0.2)
    assert not n.offer("maria/7", 5, now=0.4)
    assert n.offer("sam/7", 5, now=0.4)  # another person: their own window
    assert n.next_due() == 1.0
    assert n.due(now=0.9) == []
    assert n.due(now=1.0) == [("maria/7", 5)]
    assert n.next_due() is None
    assert not n.offer("maria/7", 6, now=1.5)
    assert n.due(now=2.0) == [("maria/7", 6)]
    assert n.offer("maria/7", 7, now=3.5)


def test_with_no_window_every_notice_goes_at_once() -> None:
    n: Coalescer[str] = Coalescer(window=0.0)
    assert all(n.offer("k", i, now=0.0) for i in range(3))
