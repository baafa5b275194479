"""The Help Desk in real browsers: a patient reads the common questions and sends
a message from the Help Desk tab, a help-desk staff member replies from the
console, and the patient's open page shows the reply without reloading; someone
who cannot sign in writes from the public help page and is told where the reply
will go. Every page passes axe."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from rtc_server.auth.models import Role
from tests.browser.axe import assert_accessible
from tests.browser.test_refills_flow import failed_calls, live, new_page, second_context, sign_in_as  # noqa: F401
from tests.harness import create_patient, server_db

pytestmark = pytest.mark.browser


async def test_patient_files_a_ticket_and_reads_the_staff_reply_without_reloading(
    live_server: Any, browser_page: Page, second_context: Any,  # noqa: F811
) -> None:
    async with server_db(live_server) as factory:
        maria = await create_patient(factory)
    patient = browser_page
    patient_failed = failed_calls(patient)
    await sign_in_as(live_server, patient.context, "maria.lopez", patient_id=maria,
                     display_name="Maria Lopez")
    await sign_in_as(live_server, second_context, "front.desk", role=Role.staff, display_name="Dana Reyes")

    await patient.goto(live_server.url + "/app/help.html")
    await expect(patient.get_by_role("heading", name="Help Desk", level=1)).to_be_visible()
    await live(patient)
    faq = patient.get_by_role("region", name="Common questions")
    for question in ("Is the patient portal secure?", "Can I use the portal on my phone or tablet?",
                     "Why can't I share my account with a family member?", "How long do lab results take?",
                     "How do I request a prescription refill?", "How do I schedule a virtual (video) visit?",
                     "Something in the portal doesn't work. What can I try?"):
        await expect(faq.get_by_text(question)).to_be_visible()
    await faq.get_by_text("How long do lab results take?").click()
    await expect(faq).to_contain_text("two to four days")
    await expect(patient.get_by_text("You have not sent the help desk a message yet.")).to_be_visible()

    form = patient.locator("#ticket-form")
    await form.get_by_role("button", name="Send to the help desk").click()
    await expect(form.get_by_text("Enter a subject, in a few words.")).to_be_visible()
    await form.get_by_label("Topic").select_option("technical")
    await form.get_by_label("Subject").fill("The records page is blank")
    await form.get_by_label("Your message").fill("On my phone the Medical Records tab shows nothing.")
    await assert_accessible(patient)
    await form.get_by_role("button", name="Send to the help desk").click()
    await expect(patient.locator("#page-status")).to_contain_text(
        "Your message was sent to the help desk as HD-")
    ticket = patient.locator("#ticket-list .ticket").first
    await expect(ticket).to_contain_text("Waiting for the clinic")
    conversation = ticket.get_by_role("list", name="Messages of HD-", exact=False)
    await expect(conversation).to_contain_text("the Medical Records tab shows nothing")

    staff = await new_page(second_context)
    staff_failed = failed_calls(staff)
    await staff.goto(live_server.url + "/console/tickets.html")
    nav = staff.get_by_role("navigation", name="Console sections")
    await expect(nav.get_by_role("link", name="Help desk")).to_contain_text("1")
    await expect(nav.get_by_role("link", name="Patients")).to_have_count(0)  # tickets, never charts
    row = staff.locator(".queue-item").first
    await expect(row).to_contain_text("The records page is blank")
    await row.get_by_role("button", name="Open").click()
    await expect(staff.locator("#ticket")).to_contain_text("the Medical Records tab shows nothing.")
    await assert_accessible(staff)
    await staff.get_by_label("Your reply").fill(
        "Thanks, Maria. Please update your browser; it works on Safari 17.")
    await staff.get_by_role("button", name="Send reply").click()
    await expect(staff.locator("#page-status")).to_contain_text("Reply sent.")
    assert staff.errors == [] and staff_failed == []  # type: ignore[attr-defined]

    # The patient's page, not reloaded: the open conversation shows the reply.
    await expect(ticket).to_contain_text("Answered")
    await expect(conversation).to_contain_text("it works on Safari 17.")
    await expect(conversation).to_contain_text("Dana Reyes")
    await ticket.get_by_role("button", name="Hide conversation").click()
    await expect(conversation).to_have_count(0)
    await ticket.get_by_role("button", name="Show conversation").click()
    await expect(conversation).to_contain_text("it works on Safari 17.")
    await assert_accessible(patient)
    assert patient_failed == []


async def test_someone_who_cannot_sign_in_writes_from_the_public_help_page(
    live_server: Any, browser_page: Page,
) -> None:
    page = browser_page
    await page.goto(live_server.url + "/help.html")
    await expect(page.get_by_role("heading", name="Help and contact", level=1)).to_be_visible()
    await expect(page.get_by_text("Why can't I share my account with a family member?")).to_be_visible()
    form = page.locator("#public-ticket-form")
    await form.get_by_label("Your name").fill("Walter Kowalski")
    await form.get_by_label("Email address for our reply").fill("not an address")
    await form.get_by_label("Subject").fill("Locked out")
    await form.get_by_label("Your message").fill("I typed my password wrong too often.")
    await form.get_by_role("button", name="Send to the help desk").click()
    await expect(form.get_by_text("Enter an email address like name@example.org.")).to_be_visible()
    await assert_accessible(page)
    await form.get_by_label("Email address for our reply").fill("walter.k@example.net")
    await form.get_by_role("button", name="Send to the help desk").click()
    sent = page.locator("#sent")
    await expect(sent).to_contain_text("We received your message (reference HD-")
    await expect(sent).to_contain_text("walter.k@example.net")
    await expect(form).to_be_hidden()
    await assert_accessible(page, phone=True)
