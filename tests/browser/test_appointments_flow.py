"""The Appointments tab in a real browser: a patient in another time zone books a
video visit, reschedules it and cancels it, with the keyboard-usable form and
accessible pages at every step; a visit inside the clinic's cut-off says to call
and shows the clinic's number; a second tab follows the changes live. Then a
provider publishes hours in the console and sees the patient's booking arrive."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect
from sqlmodel import select

from rtc_server.auth.models import Role, User
from rtc_server.auth.sessions import session_cookie_name
from rtc_server.portal.appointments.availability import AvailabilityRules, HoursBlock
from rtc_server.records.models import Appointment
from tests.api.test_appointments import add_practitioner, publish
from tests.browser.axe import assert_accessible
from tests.harness import create_patient, create_signed_in_user, server_db

pytestmark = pytest.mark.browser

VIEWER_ZONE = "America/Chicago"
DAYTIME = AvailabilityRules(
    visit_minutes=30, time_zone="America/New_York",
    weekly=[HoursBlock(weekday=d, start="08:00", end="20:00", kinds=["in_person", "video"])
            for d in range(7)],
)


@pytest_asyncio.fixture(loop_scope="session")
async def chicago(browser: Any) -> AsyncIterator[Any]:
    """A browser context whose clock is in Chicago (the clinic is in New York)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id=VIEWER_ZONE)
    try:
        yield context
    finally:
        await context.close()


async def new_page(context: Any) -> Page:
    page = await context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    return page


async def sign_in_as(live_server: Any, context: Any, username: str, **fields: Any) -> int:
    async with server_db(live_server) as factory:
        token = await create_signed_in_user(factory, live_server.settings, username, **fields)
        async with factory() as db:
            user_id = (await db.exec(select(User.id).where(User.username == username))).one()
    await context.add_cookies([{"name": session_cookie_name(live_server.settings), "value": token,
                                "url": live_server.url}])
    return user_id


async def pick_time(page: Page, day_index: int, time_index: int) -> str:
    """Choose a day and a time with the keyboard-usable radios; the chosen start (ISO)."""
    days = page.get_by_role("group", name="Day").get_by_role("radio")
    await expect(days.first).to_be_visible()
    await days.nth(day_index).check()
    times = page.get_by_role("group", name=re.compile(r"^Time on ")).get_by_role("radio")
    choice = times.nth(time_index)
    await choice.check()
    value = await choice.get_attribute("value")
    assert value
    return value


def instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


async def held(live_server: Any, patient_id: int) -> list[Appointment]:
    async with server_db(live_server) as factory, factory() as db:
        return list((await db.exec(select(Appointment).where(
            Appointment.patient_id == patient_id, Appointment.status == "booked"))).all())


async def test_patient_books_reschedules_and_cancels(clinic_server, chicago, secrets_seen) -> None:
    server = clinic_server
    async with server_db(server) as factory:
        doctor = await add_practitioner(factory, "Elena", "Marsh")
        await publish(factory, doctor, DAYTIME)
        patient_id = await create_patient(factory)
    await sign_in_as(server, chicago, "maria.lopez", patient_id=patient_id, display_name="Maria Lopez")
    page = await new_page(chicago)
    await page.goto(f"{server.url}/app/appointments.html")

    # Nothing booked yet: an honest empty state with the next step.
    upcoming = page.locator("#upcoming")
    await expect(upcoming.get_by_text("No upcoming appointments.")).to_be_visible()
    await expect(upcoming.get_by_role("link", name="Book one")).to_be_visible()
    await expect(page.get_by_text(f"Times are shown in your time zone, {VIEWER_ZONE}")).to_be_visible()
    await expect(page.get_by_text("The clinic is in America/New_York.")).to_be_visible()

    # Book: provider, a video visit, a reason (typed as text), a day and a time.
    await page.get_by_label("Provider").select_option(label="Dr. Elena Marsh, MD (Family Medicine)")
    await page.get_by_label("Video visit (virtual), from home").check()
    await page.get_by_label("Reason for the visit").fill("Blood pressure <b>check</b>")
    chosen = await pick_time(page, 3, 2)  # days ahead: outside the 24-hour cut-off
    await assert_accessible(page, phone=True)
    await page.get_by_role("button", name="Book appointment").click()
    status = page.locator("#page-status")
    await expect(status).to_contain_text("Booked: Video visit (virtual) with Dr. Elena Marsh, MD on")
    [booked] = await held(server, patient_id)
    assert booked.start == instant(chosen) and booked.kind == "video"
    assert booked.reason == "Blood pressure <b>check</b>"
    item = upcoming.get_by_role("listitem")
    await expect(item).to_have_count(1)
    await expect(item.get_by_text("Blood pressure <b>check</b>")).to_be_visible()  # as text, not markup
    await expect(item.get_by_role("heading")).to_have_text(re.compile(r" C[SD]T$"))  # the viewer's zone

    # A second tab follows along without reloading.
    other = await new_page(chicago)
    await other.goto(f"{server.url}/app/appointments.html")
    await expect(other.locator("#upcoming").get_by_role("listitem")).to_have_count(1)

    # Reschedule to another day: the new time is booked and the old one released together.
    await item.get_by_role("button", name=re.compile(r"^Reschedule")).click()
    await expect(page.get_by_role("heading", name="Reschedule your appointment")).to_be_visible()
    new_start = await pick_time(page, 4, 0)
    await page.get_by_role("button", name="Move my appointment").click()
    await expect(status).to_contain_text("Rescheduled: Video visit (virtual) with Dr. Elena Marsh, MD")
    [moved] = await held(server, patient_id)
    assert moved.start == instant(new_start) and moved.id != booked.id
    await expect(page.locator("#past").get_by_text("Rescheduled")).to_be_visible()
    await expect(page.get_by_role("heading", name="Book an appointment")).to_be_visible()
    await expect(other.locator("#past").get_by_text("Rescheduled")).to_be_visible()

    # Cancel, confirming first.
    await upcoming.get_by_role("button", name=re.compile(r"^Cancel appointment")).click()
    await page.get_by_role("button", name="Yes, cancel it").click()
    await expect(status).to_contain_text("is cancelled")
    await expect(upcoming.get_by_text("No upcoming appointments.")).to_be_visible()
    assert await held(server, patient_id) == []
    await expect(other.locator("#upcoming").get_by_text("No upcoming appointments.")).to_be_visible()
    await assert_accessible(page, phone=True)
    assert page.errors == [] and other.errors == []  # type: ignore[attr-defined]


async def test_a_visit_inside_the_cutoff_says_to_call_the_clinic(
    clinic_server, chicago, secrets_seen
) -> None:
    server = clinic_server
    async with server_db(server) as factory:
        doctor = await add_practitioner(factory, "Elena", "Marsh")
        await publish(factory, doctor, DAYTIME)
        patient_id = await create_patient(factory)
        soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=3)
        async with factory() as db:  # booked by phone earlier today
            db.add(Appointment(patient_id=patient_id, practitioner_id=doctor, start=soon,
                               end=soon + timedelta(minutes=30), reason="Sore throat"))
            await db.commit()
    await sign_in_as(server, chicago, "maria.lopez", patient_id=patient_id)
    page = await new_page(chicago)
    await page.goto(f"{server.url}/app/appointments.html")
    item = page.locator("#upcoming").get_by_role("listitem")
    await expect(item).to_contain_text("can't be changed online")
    await expect(item.get_by_role("link", name="617-555-0100")).to_have_attribute("href", "tel:+16175550100")
    await expect(item.get_by_role("button")).to_have_count(0)
    await assert_accessible(page)


async def test_provider_publishes_hours_and_sees_a_booking_arrive(
    clinic_server, browser, secrets_seen
) -> None:
    server = clinic_server
    async with server_db(server) as factory:
        doctor = await add_practitioner(factory, "Elena", "Marsh")
        patient_id = await create_patient(factory)
    provider = await browser.new_context(viewport={"width": 1280, "height": 900})
    patient = await browser.new_context(viewport={"width": 390, "height": 844})
    try:
        user_id = await sign_in_as(server, provider, "dr.marsh", role=Role.provider)
        async with server_db(server) as factory, factory() as db:
            user = await db.get(User, user_id)
            assert user is not None
            user.practitioner_id = doctor
            db.add(user)
            await db.commit()
        page = await new_page(provider)
        await page.goto(f"{server.url}/console/availability.html")
        await expect(page.get_by_text("Dr. Elena Marsh, MD")).to_be_visible()
        await expect(page.get_by_text("No hours published yet.")).to_be_visible()
        await page.get_by_label("Visit length (minutes)").select_option("30")
        for _ in range(7):
            await page.get_by_role("button", name="Add working hours").click()
        for day in range(7):
            row = page.get_by_role("group", name=f"Working hours {day + 1}", exact=True)
            await row.get_by_label("Day").select_option(index=day)
            await row.get_by_label("From").fill("08:00")
            await row.get_by_label("To").fill("20:00")
        await page.get_by_role("button", name="Add a break").click()
        await page.get_by_role("button", name="Publish hours").click()
        await expect(page.locator("#page-status")).to_contain_text("Hours published.")
        await expect(page.get_by_text("No upcoming bookings.")).to_be_visible()
        await assert_accessible(page, phone=True)

        await sign_in_as(server, patient, "maria.lopez", patient_id=patient_id)
        mine = await new_page(patient)
        await mine.goto(f"{server.url}/app/appointments.html")
        await mine.get_by_label("Provider").select_option(label="Dr. Elena Marsh, MD (Family Medicine)")
        await mine.get_by_label("Reason for the visit").fill("Knee pain")
        await pick_time(mine, 1, 0)
        await mine.get_by_role("button", name="Book appointment").click()
        await expect(mine.locator("#page-status")).to_contain_text("Booked: In person with Dr. Elena Marsh")
        await assert_accessible(mine)  # at phone size

        # The provider's open console shows the booking without a reload.
        row = page.locator("#bookings-list").get_by_role("row", name=re.compile("Knee pain"))
        await expect(row).to_be_visible()
        await expect(row).to_contain_text("Booked")
        assert page.errors == [] and mine.errors == []  # type: ignore[attr-defined]
    finally:
        await provider.close()
        await patient.close()


async def test_a_time_zone_chosen_in_account_settings_is_used_on_the_pages(
    clinic_server, chicago, secrets_seen
) -> None:
    """A patient travelling (device in Chicago) who wants home times (Los Angeles)."""
    server = clinic_server
    async with server_db(server) as factory:
        doctor = await add_practitioner(factory, "Elena", "Marsh")
        await publish(factory, doctor, DAYTIME)
        patient_id = await create_patient(factory)
    await sign_in_as(server, chicago, "maria.lopez", patient_id=patient_id, display_name="Maria Lopez")
    page = await new_page(chicago)
    await page.goto(f"{server.url}/app/account.html")
    zone = page.get_by_role("region", name="Time zone")
    await expect(zone).to_contain_text(f"this device's time zone, {VIEWER_ZONE}")
    await expect(zone.locator("#clinic-zone")).to_contain_text("America/New_York")
    await zone.get_by_label("Show times in").select_option("America/Los_Angeles")
    await zone.get_by_role("button", name="Save time zone").click()
    await expect(page.locator("#page-status")).to_contain_text("Time zone saved: times are shown in "
                                                               "America/Los_Angeles")
    await assert_accessible(page, phone=True)

    await page.goto(f"{server.url}/app/appointments.html")
    await expect(page.get_by_text("Times are shown in your time zone, America/Los_Angeles")).to_be_visible()
    await page.get_by_label("Provider").select_option(label="Dr. Elena Marsh, MD (Family Medicine)")
    await page.get_by_label("Video visit (virtual), from home").check()
    await page.get_by_label("Reason for the visit").fill("Follow-up")
    await pick_time(page, 3, 0)
    await page.get_by_role("button", name="Book appointment").click()
    await expect(page.locator("#page-status")).to_contain_text("Booked: Video visit (virtual)")
    item = page.locator("#upcoming").get_by_role("listitem")
    await expect(item.get_by_role("heading")).to_have_text(re.compile(r" P[SD]T$"))
    # The first open time of the day is 08:00 in New York: 05:00 in Los Angeles.
    [booked] = await held(server, patient_id)
    assert booked.start.astimezone(ZoneInfo("America/Los_Angeles")).hour == 5
    await expect(item.get_by_role("heading")).to_contain_text("5:00")

    # Back to the device's zone.
    await page.goto(f"{server.url}/app/account.html")
    await page.get_by_label("Show times in").select_option("")
    await page.get_by_role("button", name="Save time zone").click()
    await expect(page.locator("#page-status")).to_contain_text("times follow this device's time zone")
    await page.goto(f"{server.url}/app/appointments.html")
    await expect(page.locator("#upcoming").get_by_role("listitem").get_by_role("heading")).to_have_text(
        re.compile(r" C[SD]T$"))
    assert page.errors == []  # type: ignore[attr-defined]
