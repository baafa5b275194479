"""Secure messaging in real browsers: a patient and a provider in two Chromium
pages exchange messages live, with typing indicators and read receipts; the
patient's unread count (the Messaging tab, the inbox, the dashboard) changes
live; text is shown as text; the size limit is explained before anything is
sent; and a patient whose socket drops (even between a send and its ack)
misses nothing and sees nothing twice. The pages pass axe, on a phone too."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, WebSocketRoute, expect
from sqlalchemy import update
from sqlmodel import select

from rtc_server.auth.models import Role, User
from rtc_server.auth.sessions import session_cookie_name
from rtc_server.chat.models import Message
from rtc_server.records.models import Patient, Practitioner
from tests.browser.axe import assert_accessible
from tests.browser.helpers import set_text_size, sideways_overflow
from tests.harness import create_patient, create_signed_in_user, create_user, server_db

pytestmark = pytest.mark.browser

PATIENT = "Maria Lopez"
DOCTOR = "Dr. Ada Reyes"


@pytest_asyncio.fixture(loop_scope="session")
async def doctor_context(browser: Any) -> AsyncIterator[Any]:
    """The provider's own browser (cookies apart from the patient's)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context
    finally:
        await context.close()


async def care_team(live_server: Any, patient_context: Any, doctor_context: Any) -> dict[str, int]:
    """Dr. Reyes (a provider account) is the primary practitioner of Maria (a
    patient account); Dr. Ortiz, a cardiologist, can be routed to. Each browser
    context gets its person's session cookie."""
    settings = live_server.settings
    async with server_db(live_server) as factory:
        async with factory() as db:
            reyes = Practitioner(prefix="Dr.", given_name="Ada", family_name="Reyes", suffix="MD",
                                 specialty="Family Medicine")
            ortiz = Practitioner(prefix="Dr.", given_name="Ben", family_name="Ortiz", suffix="MD",
                                 specialty="Cardiology")
            db.add_all([reyes, ortiz])
            await db.commit()
            assert reyes.id is not None and ortiz.id is not None
        maria = await create_patient(factory, given="Maria", family="Lopez")
        patient_token = await create_signed_in_user(factory, settings, "maria.lopez", patient_id=maria,
                                                    display_name=PATIENT)
        doctor_token = await create_signed_in_user(factory, settings, "dr.reyes", role=Role.provider,
                                                   display_name=DOCTOR)
        await create_user(factory, "dr.ortiz", role=Role.provider, display_name="Dr. Ben Ortiz")
        async with factory() as db:
            await db.exec(update(Patient).where(Patient.id == maria).values(primary_practitioner_id=reyes.id))
            await db.exec(update(User).where(User.username == "dr.reyes").values(practitioner_id=reyes.id))
            await db.exec(update(User).where(User.username == "dr.ortiz").values(practitioner_id=ortiz.id))
            await db.commit()
    cookie = session_cookie_name(settings)
    await patient_context.add_cookies([{"name": cookie, "value": patient_token, "url": live_server.url}])
    await doctor_context.add_cookies([{"name": cookie, "value": doctor_token, "url": live_server.url}])
    return {"patient": maria, "practitioner": reyes.id}


async def watch_errors(page: Page) -> Page:
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    return page


async def listening(page: Page) -> None:
    """Wait until the page's socket listens (what happens next reaches it live)."""
    await expect(page.locator("html")).to_have_attribute("data-live", "ready")


def log_of(page: Page) -> Any:
    return page.locator("#message-log")


async def bodies(page: Page) -> list[str]:
    return await log_of(page).locator(".msg__body").all_text_contents()


async def send(page: Page, text: str) -> None:
    box = page.get_by_label("Your message")
    await box.fill(text)
    await page.get_by_role("button", name="Send", exact=True).click()


async def start_conversation(page: Page, live_server: Any, subject: str, body: str) -> None:
    """The patient writes a New Message (a medical question) and lands in it."""
    await page.goto(live_server.url + "/app/messages.html")
    await expect(page.get_by_role("heading", name="Your conversations")).to_be_visible()
    await page.get_by_role("link", name="New message").click()
    compose = page.locator("#compose-view")
    await compose.get_by_role("radio", name="Medical question").check()
    await compose.get_by_label("Subject").fill(subject)
    await compose.get_by_label("Message", exact=True).fill(body)
    await compose.get_by_role("button", name="Send message").click()
    await expect(page.get_by_role("heading", name=subject, level=2)).to_be_visible()


async def stored_bodies(live_server: Any) -> list[str]:
    async with server_db(live_server) as factory, factory() as db:
        rows = await db.exec(select(Message.body).order_by(Message.conversation_id, Message.seq))
        return list(rows.all())


async def test_patient_and_provider_message_each_other_live_with_typing_read_receipts_and_unread_counts(
    live_server: Any, browser_page: Page, doctor_context: Any,
) -> None:
    patient = await watch_errors(browser_page)
    await care_team(live_server, patient.context, doctor_context)
    doctor = await watch_errors(await doctor_context.new_page())

    # The provider's inbox is open and empty.
    await doctor.goto(live_server.url + "/console/messages.html")
    await expect(doctor.get_by_role("heading", name="Inbox", level=1)).to_be_visible()
    await expect(doctor.locator("#list-status")).to_contain_text("No open conversations.")
    await listening(doctor)
    inbox_tab = doctor.locator("#console-nav").get_by_role("link", name="Inbox")
    await expect(inbox_tab).to_be_visible()

    # Before anything is sent, New Message says it is not for emergencies, gives the
    # number and the clinic's usual reply time; refills point to the refill form.
    await patient.goto(live_server.url + "/app/messages.html")
    await listening(patient)
    await expect(patient.locator(".emergency-line")).to_contain_text("not for emergencies")
    await patient.get_by_role("link", name="New message").click()
    compose = patient.locator("#compose-view")
    await expect(compose.get_by_role("heading", name="New message", level=2)).to_be_focused()
    await expect(compose.locator("#compose-emergency")).to_contain_text(
        "Messaging is not for emergencies. If you have a medical emergency, call 911")
    await expect(compose.locator("#compose-emergency").get_by_role("link", name="911")).to_have_attribute(
        "href", "tel:911")
    await expect(compose.locator("#compose-reply-time")).to_have_text(
        "Your care team usually replies within 2 business days.")
    await compose.get_by_role("button", name="Send message").click()
    await expect(compose.locator(".field-error")).to_contain_text(["Choose what your message is about."])
    await compose.get_by_role("radio", name="Prescription refill request").check()
    await expect(compose.get_by_label("Medication")).to_be_visible()
    await expect(compose.get_by_role("link", name="prescription refills page")).to_have_attribute(
        "href", "/app/refills.html")
    await compose.get_by_role("radio", name="Medical question").check()
    await expect(compose.locator("#refill-fields")).to_be_hidden()
    await compose.get_by_label("Subject").fill("Dose of lisinopril")
    await compose.get_by_label("Message", exact=True).fill("Can I take it with food?\nThanks, Maria")
    await assert_accessible(patient, phone=True)
    await compose.get_by_role("button", name="Send message").click()

    # The patient lands in the conversation; the provider's inbox shows it at once.
    await expect(patient.get_by_role("heading", name="Dose of lisinopril", level=2)).to_be_visible()
    mine = log_of(patient).locator(".msg--mine")
    await expect(mine).to_have_count(1)
    await expect(mine.locator(".msg__body")).to_have_text("Can I take it with food?\nThanks, Maria")
    await expect(mine.locator(".msg__status")).to_have_text("Sent")
    row = doctor.locator("#conversation-list .conversation-item")
    await expect(row).to_contain_text(f"{PATIENT}: Dose of lisinopril")
    await expect(row.locator(".badge--unread")).to_have_text("1 unread")
    await expect(inbox_tab.locator(".nav-count")).to_have_text("1 unread")
    await assert_accessible(doctor, phone=True)

    # The provider opens it: the patient's message turns "Read" on the patient's page.
    await row.get_by_role("link").click()
    await expect(log_of(doctor).locator(".msg--theirs .msg__body")).to_have_text(
        "Can I take it with food?\nThanks, Maria")
    await expect(mine.locator(".msg__status")).to_have_text("Read")
    await expect(inbox_tab.locator(".nav-count")).to_be_hidden()

    # Typing shows on the other side; the reply arrives without a reload.
    await doctor.get_by_label("Your message").fill("Yes")
    await expect(patient.locator("#typing-indicator")).to_have_text(f"{DOCTOR} is typing…")
    await send(doctor, "Yes, with food is fine.")
    theirs = log_of(patient).locator(".msg--theirs")
    await expect(theirs.locator(".msg__body")).to_have_text(["Yes, with food is fine."])
    await expect(theirs.locator(".msg__who")).to_have_text([DOCTOR])
    await expect(patient.locator("#typing-indicator")).to_have_text("")
    await expect(patient.locator("#chat-announcer")).to_have_text(
        f"New message from {DOCTOR}: Yes, with food is fine.")
    await expect(log_of(doctor).locator(".msg--mine .msg__status")).to_have_text(["Read"])

    await patient.get_by_label("Your message").fill("Thank")
    await expect(doctor.locator("#typing-indicator")).to_have_text(f"{PATIENT} is typing…")
    await send(patient, "Thank you!")
    await expect(log_of(doctor).locator(".msg__body")).to_have_text(
        ["Can I take it with food?\nThanks, Maria", "Yes, with food is fine.", "Thank you!"])
    await expect(doctor.locator("#typing-indicator")).to_have_text("")

    # Text is shown as text: no markup, no link made of an address.
    await send(doctor, "<b>Bold?</b> <img src=x> see https://example.org/x")
    newest = log_of(patient).locator(".msg__body").last
    await expect(newest).to_have_text("<b>Bold?</b> <img src=x> see https://example.org/x")
    assert await log_of(patient).locator(".msg__body b, .msg__body img, .msg__body a").count() == 0

    # Too long is explained before sending, and nothing is sent.
    await patient.get_by_label("Your message").fill("x" * 4001)
    await expect(patient.locator(".conversation .composer__count")).to_have_text(
        "4001 of 4000 characters: 1 too many.")
    await patient.get_by_role("button", name="Send", exact=True).click()
    await expect(patient.locator(".conversation__composer .field-error")).to_have_text(
        "A message can be at most 4000 characters; this one has 4001. Split it into several messages.")
    await expect(patient.get_by_label("Your message")).to_be_focused()
    assert len(await stored_bodies(live_server)) == 4
    await patient.get_by_label("Your message").fill("")

    await assert_accessible(patient, phone=True)
    await assert_accessible(doctor, phone=True)

    # The patient goes back to the list and opens the dashboard in another tab; a new
    # message from the provider shows as unread on both, live, and goes away once read.
    await patient.get_by_role("link", name="All messages").click()
    item = patient.locator("#conversation-list .conversation-item")
    await expect(item).to_contain_text("Dose of lisinopril")
    await expect(item.locator(".badge--unread")).to_have_count(0)
    dashboard = await watch_errors(await patient.context.new_page())
    await dashboard.goto(live_server.url + "/app/dashboard.html")
    await expect(dashboard.locator("#messages-body")).to_contain_text("No unread messages")
    await expect(dashboard.locator("body")).to_have_attribute("data-live", "on")
    messaging_tab = patient.locator("#portal-nav").get_by_role("link", name="Messaging")
    await expect(messaging_tab.locator(".nav-count")).to_be_hidden()

    await send(doctor, "Please book a follow-up in two weeks.")
    await expect(messaging_tab.locator(".nav-count")).to_have_text("1 unread")
    await expect(item.locator(".badge--unread")).to_have_text("1 unread")
    await expect(dashboard.locator("#messages-body")).to_contain_text("1 unread message")
    await assert_accessible(patient, phone=True)
    await item.get_by_role("link", name="Dose of lisinopril").click()
    await expect(log_of(patient).locator(".msg__body").last).to_have_text(
        "Please book a follow-up in two weeks.")
    await expect(messaging_tab.locator(".nav-count")).to_be_hidden()
    await expect(log_of(doctor).locator(".msg--mine .msg__status").last).to_have_text("Read")

    # The provider routes it to a colleague (the patient's page follows), closes it (the
    # patient's page says so and offers a new message) and reopens it.
    await doctor.get_by_role("button", name="Route").click()
    await expect(doctor.locator("#route-to-error")).to_have_text("Choose the provider who should answer.")
    await doctor.get_by_label("Route to another provider").select_option(
        label="Dr. Ben Ortiz, MD (Cardiology)")
    await doctor.get_by_role("button", name="Route").click()
    await expect(doctor.locator("#page-status")).to_contain_text("Routed to Dr. Ben Ortiz, MD (Cardiology).")
    await expect(patient.locator(".conversation__meta")).to_contain_text("Provider: Dr. Ben Ortiz, MD")
    await doctor.get_by_role("button", name="Close conversation").click()
    await expect(patient.locator(".conversation__composer")).to_contain_text("This conversation was closed")
    await expect(patient.get_by_label("Your message")).to_have_count(0)
    await expect(patient.locator(".conversation__meta .badge")).to_have_text("Closed")
    await doctor.get_by_role("button", name="Reopen conversation").click()
    await expect(patient.get_by_label("Your message")).to_be_visible()

    # Patients cannot delete messages, but can archive a conversation (and bring it back).
    await patient.get_by_role("link", name="All messages").click()
    await item.get_by_role("button", name="Archive “Dose of lisinopril”").click()
    await expect(patient.locator("#page-status")).to_contain_text("“Dose of lisinopril” was archived.")
    await expect(item).to_have_count(0)
    await patient.locator(".queue-tabs").get_by_role("button", name="Archived").click()
    await expect(patient.get_by_role("heading", name="Archived conversations")).to_be_visible()
    await item.get_by_role("button", name="Move to inbox “Dose of lisinopril”").click()
    await expect(item).to_have_count(0)
    await patient.locator(".queue-tabs").get_by_role("button", name="Inbox").click()
    await item.get_by_role("link", name="Dose of lisinopril").click()
    await expect(log_of(patient).locator(".msg")).to_have_count(5)
    await patient.set_viewport_size({"width": 390, "height": 844})
    for percent in (100, 200):
        await set_text_size(patient, percent)
        assert await sideways_overflow(patient) == 0, f"sideways scrolling at {percent} % text"
    assert patient.errors == doctor.errors == dashboard.errors == []  # type: ignore[attr-defined]


class Line:
    """The patient's connection to the events socket, through Playwright's
    WebSocket routing, so the test can cut it (even right after the server has
    stored a message and before its ack reaches the page) and hold a reconnect."""

    def __init__(self) -> None:
        self.allowed = asyncio.Event()
        self.allowed.set()
        self.page_side: WebSocketRoute | None = None
        self.server_side: WebSocketRoute | None = None
        self.swallow_next_ack = False
        self.acks_swallowed = 0
        self.connections = 0
        self.connected = asyncio.Event()

    async def route(self, ws: WebSocketRoute) -> None:
        await self.allowed.wait()
        server = ws.connect_to_server()
        self.page_side, self.server_side = ws, server
        self.connections += 1
        ws.on_message(server.send)
        server.on_message(lambda message: self._from_server(ws, message))
        self.connected.set()

    def _from_server(self, ws: WebSocketRoute, message: str | bytes) -> None:
        if self.swallow_next_ack and isinstance(message, str) and json.loads(message).get("type") == "ack":
            # Stored and acknowledged by the server, but the page never hears of it.
            self.swallow_next_ack = False
            self.acks_swallowed += 1
            asyncio.get_running_loop().create_task(self.cut())
            return
        ws.send(message)

    async def cut(self, *, hold: bool = False) -> None:
        """Drop the connection (both sides); with ``hold``, keep the page from reconnecting."""
        if hold:
            self.allowed.clear()
        self.connected.clear()
        page_side, server_side = self.page_side, self.server_side
        self.page_side = self.server_side = None
        if page_side is not None:
            await page_side.close(code=1012, reason="gone")
        if server_side is not None:
            await server_side.close()


@asynccontextmanager
async def dropped(page: Page, line: Line) -> AsyncIterator[None]:
    """The patient's socket is down (and stays down) inside the block."""
    await line.cut(hold=True)
    await expect(page.locator("html")).to_have_attribute("data-live", "closed")
    try:
        yield
    finally:
        line.allowed.set()
    await listening(page)


async def test_a_dropped_socket_reconnects_and_the_patient_misses_nothing_and_sees_nothing_twice(
    live_server: Any, browser_page: Page, doctor_context: Any,
) -> None:
    patient = await watch_errors(browser_page)
    line = Line()
    await patient.route_web_socket("**/ws/v1/events", line.route)
    await care_team(live_server, patient.context, doctor_context)
    doctor = await watch_errors(await doctor_context.new_page())

    await start_conversation(patient, live_server, "Blood test results", "Are my results back?")
    await listening(patient)
    http_sends: list[tuple[int, str | None]] = []  # the patient's sends over plain HTTP
    patient.on("response", lambda r: r.request.method == "POST" and r.url.endswith("/messages")
               and http_sends.append((r.status, r.headers.get("idempotent-replayed"))))
    await doctor.goto(live_server.url + "/console/messages.html")
    inbox = doctor.locator("#conversation-list")
    await inbox.get_by_role("link", name=f"{PATIENT}: Blood test results").click()
    await expect(log_of(doctor).locator(".msg__body")).to_have_text(["Are my results back?"])
    await listening(doctor)
    await send(doctor, "One moment, checking.")
    await expect(log_of(patient).locator(".msg--theirs .msg__body")).to_have_text(["One moment, checking."])

    # The socket drops. The provider writes meanwhile; the patient's own message goes
    # over plain HTTP and is marked Sent; the page says live updates are paused.
    async with dropped(patient, line):
        await expect(patient.locator("#connection-note")).to_be_visible()
        for text in ("They are back.", "Cholesterol is a little high.", "Nothing urgent."):
            await send(doctor, text)
            await expect(log_of(doctor).locator(".msg--mine .msg__status").last).not_to_have_text("Sending…")
        await send(patient, "Sent while offline")
        await expect(log_of(patient).locator(".msg--mine .msg__status").last).to_have_text("Sent")
        await expect(log_of(doctor).locator(".msg__body").last).to_have_text("Sent while offline")
        assert http_sends == [(201, None)]

    # Back: what was missed arrives once, in order, and the line is live again.
    await expect(patient.locator("#connection-note")).to_be_hidden()
    expected = ["Are my results back?", "One moment, checking.", "They are back.",
                "Cholesterol is a little high.", "Nothing urgent.", "Sent while offline"]
    await expect(log_of(patient).locator(".msg__body")).to_have_text(expected)

    # Cut right after the server stored a message and acked it, before the page heard:
    # the page sends it again (same client id), the server stores it once.
    line.swallow_next_ack = True
    await send(patient, "Did the ack arrive?")
    await expect(log_of(patient).locator(".msg--mine .msg__status").last).to_have_text("Sent")
    assert line.acks_swallowed == 1
    assert http_sends[1:] == [(200, "true")]  # the resend: stored already, same id and seq
    await listening(patient)
    await send(doctor, "Yes, and only once.")
    expected += ["Did the ack arrive?", "Yes, and only once."]
    await expect(log_of(patient).locator(".msg__body")).to_have_text(expected)
    await expect(log_of(doctor).locator(".msg__body")).to_have_text(expected)
    seqs = [int(s) for s in await log_of(patient).locator(".msg").evaluate_all(
        "(items) => items.map((li) => li.dataset.seq)")]
    assert seqs == list(range(1, len(expected) + 1))
    assert await stored_bodies(live_server) == expected
    assert line.connections >= 3
    await assert_accessible(patient)
    assert patient.errors == doctor.errors == []  # type: ignore[attr-defined]


async def test_without_any_socket_the_patient_still_sends_reads_and_sees_replies_and_counts(
    live_server: Any, browser_page: Page, doctor_context: Any,
) -> None:
    patient = await watch_errors(browser_page)

    async def refuse(ws: WebSocketRoute) -> None:  # a network that lets no WebSocket through
        await ws.close(code=1013, reason="try again later")

    await patient.route_web_socket("**/ws/v1/events", refuse)
    await patient.clock.install()  # runs on its own; the test jumps ahead to the next poll
    await care_team(live_server, patient.context, doctor_context)
    doctor = await watch_errors(await doctor_context.new_page())

    await start_conversation(patient, live_server, "Knee pain", "My knee hurts when I climb stairs.")
    await expect(patient.locator("html")).to_have_attribute("data-live", "closed")
    await expect(patient.locator("#connection-note")).to_be_visible()
    await doctor.goto(live_server.url + "/console/messages.html")
    await doctor.locator("#conversation-list").get_by_role("link", name=f"{PATIENT}: Knee pain").click()
    await listening(doctor)
    await send(doctor, "Since when?")

    await patient.clock.fast_forward(16_000)  # the page asks over HTTP every 15 s
    await expect(log_of(patient).locator(".msg--theirs .msg__body")).to_have_text(["Since when?"])
    await expect(log_of(doctor).locator(".msg--mine .msg__status")).to_have_text(["Read"])
    await patient.get_by_label("Your message").fill("About a week.")
    await patient.get_by_label("Your message").press("Control+Enter")
    await expect(log_of(patient).locator(".msg--mine .msg__status").last).to_have_text("Sent")
    await expect(log_of(doctor).locator(".msg__body").last).to_have_text("About a week.")

    await patient.get_by_role("link", name="All messages").click()
    messaging_tab = patient.locator("#portal-nav").get_by_role("link", name="Messaging")
    await expect(patient.locator("#conversation-list")).to_contain_text("Knee pain")
    await send(doctor, "Please come in on Monday.")
    # Stored (the provider's page says so) before the patient's page asks again.
    await expect(log_of(doctor).locator(".msg--mine .msg__status").last).to_have_text(
        re.compile(r"^(Sent|Delivered|Read)$"))
    await patient.clock.fast_forward(31_000)  # the inbox and the tab ask every 30 s
    await expect(messaging_tab.locator(".nav-count")).to_have_text("1 unread")
    await expect(patient.locator("#conversation-list .badge--unread")).to_have_text("1 unread")
    assert await stored_bodies(live_server) == [
        "My knee hurts when I climb stairs.", "Since when?", "About a week.", "Please come in on Monday."]
    assert patient.errors == doctor.errors == []  # type: ignore[attr-defined]
