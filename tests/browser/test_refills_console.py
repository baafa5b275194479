"""The rest of the clinician workspace in a real browser: a provider finds a patient
outside their care and opens the chart only after typing a cross-cover reason; an
admin keeps the pharmacy directory and the clinic's controlled list. Every page
passes axe, on a desktop and on a phone."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from rtc_server.auth.models import Role, User
from tests.api.test_refills import add_medication, add_practitioner
from tests.browser.axe import assert_accessible
from tests.browser.helpers import PHONE, set_text_size, sideways_overflow
from tests.browser.test_refills_flow import failed_calls, sign_in_as
from tests.harness import create_patient, server_db

pytestmark = pytest.mark.browser


async def test_provider_opens_a_chart_outside_their_care_with_a_reason(
    live_server: Any, browser_page: Page,
) -> None:
    page = browser_page
    failed = failed_calls(page)
    async with server_db(live_server) as factory:
        okafor = await add_practitioner(factory, "Samuel", "Okafor")
        maria = await create_patient(factory, mrn="RCC-100001")
        await add_medication(factory, maria, "Atorvastatin 20 MG Oral Tablet")
    doctor = await sign_in_as(live_server, page.context, "dr.okafor", role=Role.provider)
    async with server_db(live_server) as factory, factory() as db:
        user = await db.get(User, doctor)
        assert user is not None
        user.practitioner_id = okafor
        db.add(user)
        await db.commit()

    await page.goto(live_server.url + "/console/index.html")
    await expect(page.locator("#portal-user")).to_contain_text("Dr. Samuel Okafor, MD")
    await page.get_by_role("region", name="Find a patient").get_by_label("Name or MRN").fill("lopez")
    await page.get_by_role("region", name="Find a patient").get_by_role("button", name="Search").click()
    await page.wait_for_url("**/console/patients.html?q=lopez")
    results = page.locator("#results")
    await expect(results.get_by_role("row", name="Maria Lopez")).to_contain_text("Not in your care")
    await assert_accessible(page)
    await results.get_by_role("button", name="Open chart of Maria Lopez").click()
    chart = page.locator("#chart")
    await expect(chart).to_contain_text("Maria Lopez is not in your care.")
    await chart.get_by_role("button", name="Open chart").click()
    await expect(chart.get_by_text("Give the reason you need this chart.")).to_be_visible()
    await chart.get_by_label("Cross-cover reason").fill("Covering for Dr. Marsh this week")
    await chart.get_by_role("button", name="Open chart").click()
    await expect(chart).to_contain_text("Opened under your cross-cover reason.")
    await expect(chart.get_by_role("heading", name="Active medications")).to_be_visible()
    await expect(chart).to_contain_text("Atorvastatin 20 MG Oral Tablet")
    await assert_accessible(page)
    assert failed == ["403 api/v1/console/patients/1/chart"]  # before the reason, as it should


async def test_admin_keeps_the_pharmacy_directory_and_the_controlled_list(
    live_server: Any, browser_page: Page,
) -> None:
    page = browser_page
    failed = failed_calls(page)
    await sign_in_as(live_server, page.context, "clinic.admin", role=Role.admin, display_name="Morgan Ellis")
    await page.goto(live_server.url + "/console/pharmacies.html")
    nav = page.get_by_role("navigation", name="Console sections")
    await expect(nav.get_by_role("link", name="Pharmacies")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_text("The directory is empty.")).to_be_visible()
    add = page.locator("#pharmacy-form")
    await add.get_by_label("Name").fill("Riverside Apothecary")
    await add.get_by_label("Town or city").fill("Boston")
    await add.get_by_label("NCPDP number").fill("12345")
    await add.get_by_role("button", name="Add pharmacy").click()
    await expect(add.locator(".field-error")).to_be_visible()
    await add.get_by_label("NCPDP number").fill("1234567")
    await add.get_by_role("button", name="Add pharmacy").click()
    await expect(page.locator("#page-status")).to_contain_text("Riverside Apothecary was added")
    row = page.locator("#directory-list").get_by_role("row", name="Riverside Apothecary")
    await expect(row).to_contain_text("In the directory")
    await row.get_by_role("button", name="Edit Riverside Apothecary").click()
    await add.get_by_label("In the directory (patients can choose it)").uncheck()
    await add.get_by_role("button", name="Save changes").click()
    await expect(row).to_contain_text("Taken out")

    controlled = page.locator("#controlled-form")
    await controlled.get_by_label("Ingredient name").fill("gabapentin")
    await controlled.get_by_label("Why (schedule or rule)").fill("state law")
    await controlled.get_by_role("button", name="Add to the list").click()
    await expect(page.locator("#controlled-list")).to_contain_text("gabapentin (state law)")
    await assert_accessible(page)
    await assert_accessible(page, phone=True)
    assert [f for f in failed if not f.startswith("422 ")] == []


async def test_the_pages_fit_a_phone_even_with_double_text(
    live_server: Any, browser: Any, browser_page: Page,
) -> None:
    """Each page of this part on a 390 px phone: no sideways scrolling at 100 % and 200 %
    text, the Menu button opens the console's sections, and axe passes."""
    async with server_db(live_server) as factory:
        maria = await create_patient(factory)
        await add_medication(factory, maria, "Atorvastatin 20 MG Oral Tablet")
    people = [
        ("dr.okafor", {"role": Role.provider}, ["/console/index.html", "/console/refills.html",
                                                  "/console/patients.html"]),
        ("front.desk", {"role": Role.staff}, ["/console/tickets.html"]),
        ("maria.lopez", {"patient_id": maria}, ["/app/refills.html", "/app/help.html"]),
        (None, {}, ["/help.html"]),
    ]
    problems: list[str] = []
    for username, fields, paths in people:
        context = await browser.new_context(viewport=PHONE)
        try:
            page = await context.new_page()
            if username:
                await sign_in_as(live_server, context, username, **fields)
            for path in paths:
                await page.goto(live_server.url + path)
                await expect(page.locator("h1")).to_be_visible()
                await expect(page.locator(".loading")).to_have_count(0)
                for percent in (100, 200):
                    await set_text_size(page, percent)
                    if overflow := await sideways_overflow(page):
                        problems.append(f"{path} at {percent} %: {overflow} px sideways")
                await set_text_size(page, 100)
                await assert_accessible(page)
            if username in ("dr.okafor", "front.desk"):
                menu = page.get_by_role("button", name="Menu")
                nav = page.get_by_role("navigation", name="Console sections")
                await expect(nav.get_by_role("link", name="Today")).to_be_hidden()
                await menu.click()
                await expect(nav.get_by_role("link", name="Today")).to_be_visible()
                await expect(nav.get_by_role("button", name="Log out")).to_be_visible()
                await assert_accessible(page)
        finally:
            await context.close()
    assert problems == [], problems
