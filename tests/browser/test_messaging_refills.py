"""A prescription refill request inside its conversation, in real browsers: the
patient chooses "Prescription refill request" in New Message, picks the
medication (a controlled substance cannot be chosen: it is refilled by phone)
and the pharmacy, and lands in the conversation, which shows the request with
its status; the provider sees it in the console inbox, answers in the thread and
approves it from the refill queue; the patient's open page shows it sent to the
pharmacy without a reload. The pages pass axe."""

# ruff: noqa: F811 (the fixtures imported from test_messaging are parameters here)
from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.api.test_refills import add_medication, add_pharmacy
from tests.browser.axe import assert_accessible
from tests.browser.test_messaging import (  # noqa: F401 (fixtures)
    care_team,
    doctor_context,
    listening,
    log_of,
    watch_errors,
)
from tests.harness import server_db

pytestmark = pytest.mark.browser


async def test_patient_asks_for_a_refill_in_messaging_and_follows_it_to_the_pharmacy_in_the_thread(
    live_server: Any, browser_page: Page, doctor_context: Any,
) -> None:
    patient = await watch_errors(browser_page)
    team = await care_team(live_server, patient.context, doctor_context)
    async with server_db(live_server) as factory:
        statin = await add_medication(factory, team["patient"], "Atorvastatin 20 MG Oral Tablet",
                                      code="617310", prescriber_id=team["practitioner"])
        oxy = await add_medication(factory, team["patient"], "Oxycodone Hydrochloride 5 MG Oral Tablet",
                                   prescriber_id=team["practitioner"])
        harbor = await add_pharmacy(factory, "Harbor Pharmacy", ncpdp="1234567")

    await patient.goto(live_server.url + "/app/messages.html?new=1")
    await listening(patient)
    compose = patient.locator("#compose-view")
    await compose.get_by_role("radio", name="Prescription refill request").check()
    medication = compose.get_by_label("Medication")
    await expect(medication.locator(f"option[value='{oxy}']")).to_be_disabled()
    await expect(medication.locator(f"option[value='{oxy}']")).to_contain_text("controlled substance")
    await expect(compose.get_by_label("Subject")).to_be_hidden()
    await compose.get_by_role("button", name="Send message").click()
    await expect(compose.locator(".field-error").first).to_contain_text("Choose the medication to refill.")
    await medication.select_option(str(statin))
    await compose.get_by_label("Pharmacy").select_option(str(harbor))
    await compose.get_by_label("Note for your provider (optional)").fill("Three days left")
    await assert_accessible(patient, phone=True)
    await compose.get_by_role("button", name="Send message").click()

    # The patient lands in the conversation, which carries the request.
    title = patient.get_by_role("heading", name="Refill: Atorvastatin 20 MG Oral Tablet", level=2)
    await expect(title).to_be_visible()
    card = patient.locator(".refill-card")
    await expect(card.locator(".badge")).to_have_text("Requested")
    await expect(card).to_contain_text("Harbor Pharmacy")
    await expect(card).to_contain_text("Three days left")
    await expect(log_of(patient).locator(".msg--mine .msg__body")).to_contain_text(
        "Please refill Atorvastatin 20 MG Oral Tablet, to be sent to Harbor Pharmacy.")
    await assert_accessible(patient)

    # The provider opens it from the inbox, answers there and approves from the queue.
    doctor = await watch_errors(await doctor_context.new_page())
    await doctor.goto(live_server.url + "/console/messages.html")
    row = doctor.locator("#conversation-list .conversation-item")
    await expect(row).to_contain_text("Refill: Atorvastatin")
    await row.get_by_role("link").click()
    doctor_card = doctor.locator(".refill-card")
    await expect(doctor_card.locator(".badge")).to_have_text("Requested")
    queue_link = doctor_card.get_by_role("link", name="Approve or deny it in the refill queue")
    await expect(queue_link).to_have_attribute("href", "/console/refills.html")
    await assert_accessible(doctor)
    box = doctor.get_by_label("Your message")
    await box.fill("Approved: it goes to Harbor today.")
    await doctor.get_by_role("button", name="Send", exact=True).click()
    await expect(log_of(patient).locator(".msg--theirs .msg__body")).to_have_text(
        "Approved: it goes to Harbor today.")
    await doctor.goto(live_server.url + "/console/refills.html")
    item = doctor.locator(".queue-item").first
    await item.get_by_role("button", name="Approve and send to Harbor Pharmacy").click()
    await expect(doctor.locator("#page-status")).to_contain_text("was sent to Harbor Pharmacy")

    # The patient's page, never reloaded, shows it sent.
    await expect(card.locator(".badge")).to_have_text("Sent to pharmacy")
    await expect(card.get_by_role("list", name="Progress of the request").locator("li")).to_have_count(3)
    assert patient.errors == [] and doctor.errors == []  # type: ignore[attr-defined]
