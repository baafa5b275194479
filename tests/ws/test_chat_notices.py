"""Batched email/SMS notices for people with no open page: a burst of messages
sends one notice, which names no health data; someone with a page open (on any
instance) gets none, nor someone who came back or read the messages before the
delay ended; the channel follows the person's "new messages" choice; with two
instances on one database each notice goes out once. Real sockets (uvicorn),
the real SMTP sink, and waits on events, not sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import update
from sqlmodel import select

from rtc_server.app import create_app
from rtc_server.auth.models import User
from rtc_server.config import Settings
from rtc_server.jobs.digest import LINE
from rtc_server.jobs.models import NoticeDigest
from rtc_server.portal.appointments.sms import OutboxSmsSender
from tests.api.test_chat_support import ROOMY, Clinic, Person, make_clinic, send, start
from tests.harness import csrf_client
from tests.ws.helpers import Served, open_socket, serving
from tests.ws.helpers import User as WsUser

pytestmark = pytest.mark.settings(chat_notice_delay_seconds=0.4, presence_heartbeat_seconds=5.0,
                                  mail_poll_seconds=0.2)

MARIA = "maria.lopez@example.org"
SECRET_WORDS = ("Hello doctor", "dose", "lisinopril", "Question about")


@pytest_asyncio.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    async with serving(settings, create_app(settings)) as s:
        s.app.state.chat.limits = ROOMY
        yield s


@pytest_asyncio.fixture
async def clinic(served: Served, secrets_seen: set[str]) -> AsyncIterator[Clinic]:
    c = await make_clinic(served.app, secrets_seen)
    try:
        yield c
    finally:
        await c.aclose()


@asynccontextmanager
async def page_open(served: Served, p: Person) -> AsyncIterator[None]:
    """A page of ``p``'s with its socket listening, counted as present in the database."""
    async with open_socket(served, WsUser(p.user_id, p.token)):
        await served.app.state.chat.presence.flushed()
        yield
    await served.app.state.chat.presence.flushed()


async def settled(*apps: Any) -> None:
    """Every digest scheduled so far was decided, and its mail sent."""
    async with asyncio.timeout(10):
        for a in apps:
            await a.state.chat.digests.settled()
        for a in apps:
            await a.state.deps.mail_worker.drain()


async def outcomes(app: Any, user_id: int) -> list[str | None]:
    async with app.state.session_factory() as db:
        rows = await db.exec(select(NoticeDigest).where(NoticeDigest.user_id == user_id)
                             .order_by(NoticeDigest.id))
        return [r.outcome for r in rows.all()]


async def test_a_burst_of_ten_messages_to_someone_away_sends_one_notice_with_no_health_data(
        served: Served, clinic: Clinic, smtp: Any) -> None:
    async with page_open(served, clinic.reyes):
        conv = (await start(clinic.maria, subject="Question about lisinopril"))["conversation"]
        for i in range(10):
            assert (await send(clinic.reyes, conv["id"], f"About your dose, part {i}")).status_code == 201
        await settled(served.app)
    [mail] = smtp.to(MARIA)
    text = smtp.text(mail)
    assert LINE in text and "http://testserver/app/messages.html" in text
    assert not any(word.lower() in (text + str(mail["Subject"])).lower() for word in SECRET_WORDS)
    assert await outcomes(served.app, clinic.maria.user_id) == ["email"]
    assert await outcomes(served.app, clinic.reyes.user_id) == []  # his page was open


async def test_no_notice_for_an_open_page_nor_for_someone_who_came_back_or_read_in_time(
        served: Served, clinic: Clinic, smtp: Any) -> None:
    async with page_open(served, clinic.reyes):
        conv = (await start(clinic.maria))["conversation"]
        async with page_open(served, clinic.maria):
            await send(clinic.reyes, conv["id"], "Your page is open")
            await settled(served.app)
        assert await outcomes(served.app, clinic.maria.user_id) == []

        # Away when it arrives, back before the delay ends.
        await send(clinic.reyes, conv["id"], "You come back")
        await served.app.state.chat.digests.settled_scheduling()
        async with page_open(served, clinic.maria):
            await settled(served.app)
        # Away, and reads it (another device, over HTTP) before the delay ends.
        r = await send(clinic.reyes, conv["id"], "You read it")
        await served.app.state.chat.digests.settled_scheduling()
        await clinic.maria.client.post(f"/api/v1/conversations/{conv['id']}/read",
                                       json={"seq": r.json()["seq"]})
        await settled(served.app)
    assert await outcomes(served.app, clinic.maria.user_id) == ["present", "read"]
    assert smtp.to(MARIA) == []


async def test_the_notice_goes_by_text_when_that_is_the_persons_choice(
        served: Served, clinic: Clinic, smtp: Any, settings: Settings) -> None:
    async with served.app.state.session_factory() as db:
        await db.exec(update(User).where(User.id == clinic.maria.user_id).values(
            phone="+1 617 555 0100", notification_prefs={"new_messages": {"email": False, "sms": True}}))
        await db.commit()
    async with page_open(served, clinic.reyes):
        conv = (await start(clinic.maria))["conversation"]
        await send(clinic.reyes, conv["id"], "Your dose is fine")
        await settled(served.app)
    [text] = [t for t in OutboxSmsSender(settings.outbox_dir).sent() if t["kind"] == "new_message"]
    assert text["to"] == "+1 617 555 0100"
    assert LINE in text["text"] and "dose" not in text["text"].lower()
    assert smtp.to(MARIA) == []
    assert await outcomes(served.app, clinic.maria.user_id) == ["sms"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_with_two_instances_presence_is_shared_and_each_notice_goes_once(
        served: Served, clinic: Clinic, smtp: Any, settings: Settings) -> None:
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        other.state.chat.limits = ROOMY
        reyes_b = await csrf_client(other)
        reyes_b.cookies.set("rtc_session", clinic.reyes.token)
        try:
            async with page_open(served, clinic.reyes):
                conv = (await start(clinic.maria))["conversation"]
                url = f"/api/v1/conversations/{conv['id']}/messages"
                # Maria's page is open on instance A; the message is stored on instance B.
                async with page_open(served, clinic.maria):
                    r = await reyes_b.post(url, json={"body": "Seen on A", "client_id": "b-1"})
                    assert r.status_code == 201
                    await settled(served.app, other)
                assert smtp.to(MARIA) == []
                # Away now: a burst on B, both instances' workers running; one notice.
                for i in range(5):
                    await reyes_b.post(url, json={"body": f"Burst {i}", "client_id": f"b-burst-{i}"})
                await settled(served.app, other)
        finally:
            await reyes_b.aclose()
    assert len(smtp.to(MARIA)) == 1
    assert await outcomes(served.app, clinic.maria.user_id) == ["email"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
@pytest.mark.settings(mail_claim_seconds=0.3)
async def test_a_notice_whose_claim_was_taken_over_is_not_sent_again(
        served: Served, clinic: Clinic, smtp: Any, settings: Settings) -> None:
    # Review finding 8: an instance slower than mail_claim_seconds to settle a
    # digest still queued its mail after another instance had taken it over.
    slow = served.app.state.chat.digests
    real_decide = slow._decide
    stalled = asyncio.Event()

    async def decide_slowly(*args: Any) -> Any:
        stalled.set()
        await asyncio.sleep(1.0)  # past the claim: the other instance takes it over
        return await real_decide(*args)

    slow._decide = decide_slowly
    other = create_app(settings)
    async with page_open(served, clinic.reyes):
        conv = (await start(clinic.maria))["conversation"]
        await send(clinic.reyes, conv["id"], "Your dose is fine")
        async with asyncio.timeout(5):
            await stalled.wait()  # instance A holds the claim and stalls
        async with other.router.lifespan_context(other):
            async with asyncio.timeout(10):
                await other.state.chat.digests.settled()
                await other.state.deps.mail_worker.drain()
            await asyncio.sleep(1.2)  # A wakes up and finishes its (taken-over) settle
            await settled(served.app, other)
    assert len(smtp.to(MARIA)) == 1
    assert await outcomes(served.app, clinic.maria.user_id) == ["email"]


@pytest.mark.settings(chat_notice_backoff_seconds=3600)
async def test_after_a_notice_the_next_waits_until_the_person_has_been_back(
        served: Served, clinic: Clinic, smtp: Any) -> None:
    # Review finding 7: each message after a sent notice scheduled another, so a
    # correspondent could cause one email every delay.
    digests = served.app.state.chat.digests
    async with page_open(served, clinic.reyes):
        conv = (await start(clinic.maria))["conversation"]
        await send(clinic.reyes, conv["id"], "First")
        await settled(served.app)
        assert len(smtp.to(MARIA)) == 1
        for i in range(3):  # she has not been back: no more notices for now
            await send(clinic.reyes, conv["id"], f"More {i}")
        await digests.settled_scheduling()
        await asyncio.sleep(1.0)  # well past chat_notice_delay_seconds
        await served.app.state.deps.mail_worker.drain()
        assert len(smtp.to(MARIA)) == 1
        assert await outcomes(served.app, clinic.maria.user_id) == ["email", None]
        # She comes back and reads everything; the next message is told as usual.
        last = (await send(clinic.reyes, conv["id"], "Read me")).json()["seq"]
        await digests.settled_scheduling()
        await clinic.maria.client.post(f"/api/v1/conversations/{conv['id']}/read", json={"seq": last})
        await send(clinic.reyes, conv["id"], "After your visit")
        await settled(served.app)
    assert len(smtp.to(MARIA)) == 2
    assert await outcomes(served.app, clinic.maria.user_id) == ["email", "email"]


@pytest.mark.settings(presence_heartbeat_seconds=0.2)
async def test_presence_left_by_a_crashed_instance_is_deleted_on_the_heartbeat(
        served: Served, clinic: Clinic) -> None:
    # Review finding 9: rows of instances that died were never deleted.
    from datetime import timedelta

    from rtc_server.jobs.models import Presence

    now = served.app.state.deps.clock()
    async with served.app.state.session_factory() as db:
        db.add(Presence(instance_id="crashed", user_id=clinic.maria.user_id,
                        seen_at=now - timedelta(hours=1)))
        db.add(Presence(instance_id="alive", user_id=clinic.sam.user_id, seen_at=now))
        await db.commit()
    async with page_open(served, clinic.reyes):
        await asyncio.sleep(0.7)  # a few heartbeats
        await served.app.state.chat.presence.flushed()
        async with served.app.state.session_factory() as db:
            rows = {(r.instance_id, r.user_id) for r in (await db.exec(select(Presence))).all()}
    mine = served.app.state.chat.presence.instance_id
    assert rows == {("alive", clinic.sam.user_id), (mine, clinic.reyes.user_id)}
