"""Group commit: the pure batcher, one writer batching concurrent senders,
and two writers (two app instances on one PostgreSQL database) racing on the
same conversations: no gap, no duplicate, every acknowledged message stored
with the sequence it was acknowledged with, and a sequence is never visible
before every lower one is (the resume-from-last-seen trap in DESIGN.md)."""

# ruff: noqa: F811 (the fixtures imported from test_chat_support are parameters here)
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from rtc_server.app import create_app
from rtc_server.chat.models import Message
from rtc_server.chat.writer import Batcher, Draft, plan
from tests.api.test_chat_support import (  # noqa: F401 (fixtures)
    ROOMY,
    app,
    cid,
    clinic,
    send,
    start,
    stored_messages,
)
from tests.harness import csrf_client

# --- the batcher, without I/O -------------------------------------------------------------


def test_batcher_hands_out_drafts_in_arrival_order_at_most_max_items_at_a_time() -> None:
    b: Batcher[str, int, str] = Batcher(max_items=3, max_pending=10)
    for i in range(5):
        assert b.add(f"k{i}", i, f"w{i}")
    assert [e.item for e in b.take()] == [0, 1, 2]
    assert [e.item for e in b.take()] == [3, 4]
    assert b.take() == [] and len(b) == 0


def test_a_draft_sent_twice_before_it_is_stored_is_stored_once_and_answers_both() -> None:
    b: Batcher[str, str, str] = Batcher()
    assert b.add("maria/phone-1", "hello", "first socket")
    assert not b.add("maria/phone-1", "hello", "after a reconnect")
    [entry] = b.take()
    assert entry.waiters == ["first socket", "after a reconnect"]
    # Once taken (being stored), the same key queues again; the store finds it stored.
    assert b.add("maria/phone-1", "hello", "third try")


def test_batcher_says_full_when_too_much_waits() -> None:
    b: Batcher[int, int, None] = Batcher(max_items=2, max_pending=2)
    b.add(1, 1, None)
    assert not b.full
    b.add(2, 2, None)
    assert b.full
    b.take()
    assert not b.full


# --- planning a batch, without I/O ------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_a_batch_numbers_each_conversation_on_from_its_locked_last_seq_in_arrival_order() -> None:
    drafts = [Draft(7, 1, "a", "x"), Draft(8, 2, "b", "y"), Draft(7, 2, "c", "z"), Draft(7, 1, "d", "w")]
    planned = plan(drafts, {7: (40, "open"), 8: (0, "open")}, {}, NOW)
    assert [(r.conversation_id, r.seq, r.client_id) for r in planned.rows] == [
        (7, 41, "a"), (8, 1, "b"), (7, 42, "c"), (7, 43, "d")]
    assert planned.last_seq == {7: 43, 8: 1}
    batch = planned.batch({(7, 41): 100, (8, 1): 101, (7, 42): 102, (7, 43): 103}, {})
    assert [(o.id, o.seq, o.created) for o in batch.outcomes] == [
        (100, 41, True), (101, 1, True), (102, 42, True), (103, 43, True)]


def test_a_resend_is_answered_with_the_stored_message_and_takes_no_sequence() -> None:
    earlier = {(1, "a"): (55, 7, 12, NOW)}
    planned = plan([Draft(7, 1, "a", "again"), Draft(7, 1, "b", "new")], {7: (12, "open")}, earlier, NOW)
    [resend, _] = planned.outcomes
    assert (resend.id, resend.seq, resend.created) == (55, 12, False)
    assert [(r.seq, r.client_id) for r in planned.rows] == [(13, "b")]


def test_refusals_in_a_batch_store_nothing_and_leave_no_gap() -> None:
    earlier = {(1, "used"): (55, 9, 3, NOW)}
    drafts = [Draft(7, 1, "used", "x"), Draft(404, 1, "b", "x"), Draft(8, 1, "c", "x"),
              Draft(7, 1, "d", "x")]
    planned = plan(drafts, {7: (5, "open"), 8: (2, "closed")}, earlier, NOW)
    reused, missing, closed, ok = planned.outcomes
    assert (reused.code, missing.code, closed.code) == (
        "client_id_reused", "not_found", "conversation_closed")
    assert ok is None and [(r.conversation_id, r.seq) for r in planned.rows] == [(7, 6)]


# --- one writer -----------------------------------------------------------------------------

async def test_concurrent_senders_are_stored_in_few_transactions_with_gap_free_sequences(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    writer = clinic.app.state.chat.writer
    before = writer.batches
    people = [clinic.maria, clinic.reyes, clinic.desk]
    answers = await asyncio.gather(*(send(people[i % 3], conv["id"], f"m{i}") for i in range(60)))
    assert {r.status_code for r in answers} == {201}
    seqs = sorted(r.json()["seq"] for r in answers)
    assert seqs == list(range(2, 62))
    stored = await stored_messages(clinic.app, conv["id"])
    assert [m.seq for m in stored] == list(range(1, 62))
    assert {(r.json()["id"], r.json()["seq"]) for r in answers} <= {(m.id, m.seq) for m in stored}
    assert writer.batches - before < 60, "group commit: several messages per transaction"


# --- two writers on one PostgreSQL database ---------------------------------------------------

@pytest_asyncio.fixture
async def second_app(app, settings) -> AsyncIterator[Any]:
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        other.state.chat.limits = ROOMY
        yield other


async def _count_upto(app: Any, conversation_id: int, seq: int) -> int:
    async with app.state.session_factory() as db:
        return (await db.exec(select(func.count()).select_from(Message).where(
            Message.conversation_id == conversation_id, Message.seq <= seq))).one()[0]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_writers_racing_on_postgres_leave_no_gap_no_duplicate_and_lose_nothing(
    clinic, second_app,
) -> None:
    convs = [(await start(clinic.maria))["conversation"]["id"],
             (await start(clinic.sam))["conversation"]["id"]]
    # The same people, signed in on the second instance too.
    twins = {}
    for p in (clinic.maria, clinic.sam, clinic.reyes):
        c = await csrf_client(second_app)
        c.cookies.set("rtc_session", p.token)
        twins[p.user_id] = c
    violations: list[tuple[int, int, int]] = []

    async def sender(client: Any, conversation_id: int, tag: str, n: int = 40) -> list[dict]:
        acks = []
        for i in range(n):
            r = await client.post(f"/api/v1/conversations/{conversation_id}/messages",
                                  json={"body": f"{tag}:{i}", "client_id": f"{tag}-{i}"})
            assert r.status_code in (200, 201), r.text
            ack = r.json()
            # The trap: once seq N is acknowledged, every seq below N is committed too.
            seen = await _count_upto(clinic.app, conversation_id, ack["seq"])
            if seen != ack["seq"]:
                violations.append((conversation_id, ack["seq"], seen))
            acks.append(ack)
        return acks

    try:
        jobs = []
        for conv_id, patient in zip(convs, (clinic.maria, clinic.sam), strict=True):
            for person in (patient, clinic.reyes):
                for n, client in enumerate((person.client, twins[person.user_id])):
                    jobs.append(sender(client, conv_id, f"c{conv_id}-u{person.user_id}-i{n}"))
        # Instance two resends what Maria sends through instance one (the same
        # client ids, racing): each is stored once and both get its id and seq.
        resent = f"c{convs[0]}-u{clinic.maria.user_id}-i0"
        results = await asyncio.gather(*jobs, sender(twins[clinic.maria.user_id], convs[0], resent))
    finally:
        for c in twins.values():
            await c.aclose()
    assert violations == []
    acked: dict[tuple[int, int], set[int]] = {}
    for batch in results:
        for a in batch:
            acked.setdefault((a["conversation_id"], a["seq"]), set()).add(a["id"])
    for conv_id in convs:
        stored = await stored_messages(clinic.app, conv_id)
        seqs = [m.seq for m in stored]
        assert seqs == list(range(1, 162)), "gap-free, 4 senders x 40 + the first message"
        assert len({(m.sender_id, m.client_id) for m in stored}) == len(stored), "no duplicate"
        for m in stored[1:]:
            assert acked[(conv_id, m.seq)] == {m.id}, "every ack names the stored message"
    assert len(acked) == 320
    both = clinic.app.state.chat.writer.batches, second_app.state.chat.writer.batches
    assert all(n > 0 for n in both), "both instances wrote"
