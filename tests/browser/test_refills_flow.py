"""Prescription refills in real browsers: a patient asks for a refill from the
refills page (reached from Messaging), the provider approves it in the console
(with its own navigation, the provider's name and credentials, no patient tabs),
and the patient's open page shows "Sent to pharmacy" without reloading. Both
pages pass axe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect
from sqlmodel import select

from rtc_server.auth.models import Role, User
from rtc_server.auth.sessions import session_cookie_name
from rtc_server.records.models import Patient
from tests.api.test_refills import (
    add_medication,
    add_pharmacy,
    add_practitioner,
)
from tests.browser.axe import assert_accessible
from tests.harness import create_patient, create_signed_in_user, server_db

pytestmark = pytest.mark.browser


async def new_page(context: Any) -> Page:
    page = await context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    return page


async def sign_in_as(live_server: Any, context: Any, username: str, **fields: Any) -> int:
    """A new account with a full session on the live server; ``context`` gets its cookie."""
    async with server_db(live_server) as factory:
        token = await create_signed_in_user(factory, live_server.settings, username, **fields)
        async with factory() as db:
            user_id = (await db.exec(select(User.id).where(User.username == username))).one()
    await context.add_cookies([{"name": session_cookie_name(live_server.settings), "value": token,
                                "url": live_server.url}])
    return user_id


@pytest_asyncio.fixture(loop_scope="session")
async def second_context(browser: Any) -> AsyncIterator[Any]:
    """Another person's browser (the provider's), with its own cookies."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context
    finally:
        await context.close()


async def a_clinic(live_server: Any) -> dict[str, int]:
    async with server_db(live_server) as factory:
        marsh = await add_practitioner(factory, "Elena", "Marsh", npi="1234567893")
        maria = await create_patient(factory, mrn="RCC-100001")
        async with factory() as db:
            row = await db.get(Patient, maria)
            assert row is not None
            row.primary_practitioner_id = marsh
            db.add(row)
            await db.commit()
        ator = await add_medication(factory, maria, "Atorvastatin 20 MG Oral Tablet", code="617310",
                                    prescriber_id=marsh, dosage="1 tablet by mouth at bedtime")
        await add_medication(factory, maria, "Oxycodone Hydrochloride 5 MG Oral Tablet", prescriber_id=marsh)
        await add_pharmacy(factory, "Harbor Pharmacy", ncpdp="1234567")
        await add_pharmacy(factory, "Corner Drug Store", city="Cambridge", zip_code="02139")
    return {"marsh": marsh, "maria": maria, "atorvastatin": ator}


def failed_calls(page: Page) -> list[str]:
    """API calls that answered 4xx/5xx, collected from now on (``GET /clinic`` is left
    out: the shell asks for it before the core lists it)."""
    failed: list[str] = []

    def check(response: Any) -> None:
        path = response.url.split("://", 1)[1].split("/", 1)[1]
        if response.status >= 400 and path.startswith("api/") and path != "api/v1/clinic":
            failed.append(f"{response.status} {path}")

    page.on("response", check)
    return failed


async def live(page: Page) -> None:
    """Wait until the page's events socket listens (what happens next is seen live)."""
    await expect(page.locator("html")).to_have_attribute("data-live", "ready")


async def test_patient_requests_a_refill_the_provider_approves_and_sees_it_sent_without_reloading(
    live_server: Any, browser_page: Page, second_context: Any,
) -> None:
    clinic = await a_clinic(live_server)
    patient = browser_page
    patient_failed = failed_calls(patient)
    await sign_in_as(live_server, patient.context, "maria.lopez", patient_id=clinic["maria"],
                     display_name="Maria Lopez")
    doctor_id = await sign_in_as(live_server, second_context, "dr.marsh", role=Role.provider,
                                 display_name="Elena Marsh")
    async with server_db(live_server) as factory, factory() as db:
        user = await db.get(User, doctor_id)
        assert user is not None
        user.practitioner_id = clinic["marsh"]
        db.add(user)
        await db.commit()

    # The patient opens the refill form from Messaging.
    await patient.goto(live_server.url + "/app/refills.html")
    await expect(patient.get_by_role("heading", name="Prescription refills", level=1)).to_be_visible()
    await live(patient)
    form = patient.locator("#refill-form")
    controlled = form.get_by_role("radio", name="Oxycodone Hydrochloride 5 MG Oral Tablet")
    await expect(controlled).to_be_disabled()
    await expect(form).to_contain_text("Controlled substance: please call the clinic")
    await form.get_by_role("button", name="Send request").click()
    await expect(form.locator(".field-error").first).to_be_visible()  # nothing chosen yet
    await form.get_by_role("radio", name="Atorvastatin 20 MG Oral Tablet").check()
    await form.get_by_label("Find another pharmacy").fill("harbor")
    await form.get_by_role("button", name="Search").click()
    await form.get_by_role("radio", name="Harbor Pharmacy").check()
    await form.get_by_label("Note for your provider (optional)").fill("Running out on Friday")
    await assert_accessible(patient)
    asking = lambda r: r.method == "POST" and r.url.endswith("/api/v1/refills")  # noqa: E731
    async with patient.expect_request(asking) as sent:
        await form.get_by_role("button", name="Send request").click()
    assert (await sent.value).headers.get("idempotency-key")  # a retry after a lost answer is a replay
    await expect(patient.locator("#page-status")).to_contain_text(
        "Your request for Atorvastatin 20 MG Oral Tablet was sent")
    mine = patient.locator("#request-list .request").first
    await expect(mine).to_contain_text("Requested")
    await expect(mine).to_contain_text("Harbor Pharmacy")
    await expect(form.get_by_role("radio", name="Atorvastatin 20 MG Oral Tablet")).to_be_disabled()
    await assert_accessible(patient)

    # The provider's console: its own navigation, their name and credentials, the request.
    doctor = await new_page(second_context)
    doctor_failed = failed_calls(doctor)
    await doctor.goto(live_server.url + "/console/index.html")
    nav = doctor.get_by_role("navigation", name="Console sections")
    await expect(nav.get_by_role("link", name="Refills")).to_contain_text("1")
    await expect(doctor.locator("#portal-user")).to_contain_text("Dr. Elena Marsh, MD")
    for patient_tab in ("Dashboard", "Medical Records", "Messaging", "Virtual Visits"):
        await expect(nav.get_by_role("link", name=patient_tab)).to_have_count(0)
    await assert_accessible(doctor)
    await nav.get_by_role("link", name="Refills").click()
    item = doctor.locator(".queue-item").first
    await expect(item).to_contain_text("Maria Lopez")
    await expect(item).to_contain_text("Running out on Friday")
    await expect(item).to_contain_text("2 refills allowed")
    await assert_accessible(doctor)
    await item.get_by_label("Quantity (optional)").fill("90")
    await item.get_by_label("Refills (optional)").fill("3")
    await item.get_by_role("button", name="Approve and send to Harbor Pharmacy").click()
    await expect(doctor.locator("#page-status")).to_contain_text("was sent to Harbor Pharmacy")
    await expect(doctor.get_by_text("No refill requests are waiting for you.")).to_be_visible()
    assert doctor.errors == [] and doctor_failed == []  # type: ignore[attr-defined]

    # The patient's page, never reloaded, shows it sent, with each step's time.
    await expect(mine.locator(".badge")).to_have_text("Sent to pharmacy")
    steps = mine.get_by_role("list", name="Progress").locator("li")
    await expect(steps).to_have_count(3)
    await expect(steps.nth(2)).to_contain_text("Sent to pharmacy")
    await expect(mine).to_contain_text("Quantity: 90 · Refills: 3")
    await assert_accessible(patient)
    assert patient_failed == []
    assert [e for e in patient.console_errors if "Failed to load resource" not in e] == []  # type: ignore[attr-defined]
