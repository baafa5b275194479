"""The Dashboard in a real browser: a patient has it open while a provider releases a
held lab result in the console; the result appears on the dashboard without a reload,
the patient opens it (the history chart and its table, the clinician's note), downloads
the whole record as FHIR, and the result is no longer new."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect
from sqlmodel import select

from rtc_server import audit
from rtc_server.auth.actor import NO_REQUEST, Actor
from rtc_server.auth.models import Role, SessionStage, User
from rtc_server.auth.sessions import session_cookie_name
from rtc_server.portal.labs.models import LabHoldRule
from rtc_server.portal.labs.review import enter_result
from rtc_server.portal.labs.shapes import ResultIn
from tests.api.test_records import import_demo
from tests.browser.axe import assert_accessible
from tests.harness import create_signed_in_user, server_db

pytestmark = pytest.mark.browser

A1C = "4548-4"
A1C_NAME = "Hemoglobin A1c/Hemoglobin.total in Blood"


async def new_page(browser: Any, live_server: Any, token: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    await context.add_cookies([{"name": session_cookie_name(live_server.settings), "value": token,
                                "url": live_server.url}])
    page = await context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    return page


async def clinic_with_a_held_result(server: Any, secrets_seen: set[str]) -> tuple[str, str, int]:
    """The demo clinic imported (history released), A1c held for review, and a new A1c
    entered by Dr. Marsh: the tokens of María (patient) and Dr. Marsh, and the new result's id."""
    async with server_db(server) as factory:
        audit.bind_key(factory.kw["bind"], server.settings.secret)  # rows the server's sealer accepts
        clinic = await import_demo(factory, settings=server.settings)
        patient = await create_signed_in_user(
            factory, server.settings, "maria.alvarez", role=Role.patient,
            patient_id=clinic.patients["alvarez"], display_name="María Álvarez")
        doctor = await create_signed_in_user(factory, server.settings, "dr.marsh", role=Role.provider,
                                             display_name="Dr. Elena Marsh")
        async with factory() as db:
            marsh = (await db.exec(select(User).where(User.username == "dr.marsh"))).one()
            marsh.practitioner_id = clinic.practitioners["marsh"]
            db.add(marsh)
            db.add(LabHoldRule(code=A1C, display="Hemoglobin A1c", reason="Dr. Marsh goes over it with you.",
                               set_at=datetime.now(UTC)))
            await db.commit()
            actor = Actor(user_id=marsh.id or 0, username="dr.marsh", role=Role.provider, patient_id=None,
                          session_id="test", stage=SessionStage.full, meta=NO_REQUEST)
        async with factory() as db:
            entered = await enter_result(
                db, actor, clinic.patients["alvarez"],
                ResultIn(code=A1C, display=A1C_NAME, value=7.1, unit="%", reference_low=4.0,
                         reference_high=5.6),
                settings=server.settings, now=datetime.now(UTC))
    assert entered.state == "held"
    secrets_seen.update({patient, doctor})
    return patient, doctor, entered.id


async def test_patient_sees_a_released_result_appear_live_opens_it_and_downloads_the_record(
    clinic_server, browser, secrets_seen,
) -> None:
    server = clinic_server
    patient_token, doctor_token, result_id = await clinic_with_a_held_result(server, secrets_seen)
    patient = await new_page(browser, server, patient_token)
    doctor = await new_page(browser, server, doctor_token)

    # The patient's dashboard is open and listening; the held result is not on it.
    await patient.goto(f"{server.url}/app/dashboard.html")
    await expect(patient.locator("body[data-live='on']")).to_have_count(1)
    results = patient.locator("#results")
    await expect(results.get_by_role("link", name=re.compile("^Glucose"))).to_be_visible()  # imported, new
    released = results.locator(f"[data-result-id='{result_id}']")
    await expect(released).to_have_count(0)
    await expect(patient.locator("#appointments")).to_contain_text("with Dr. Elena Marsh, MD")
    await expect(patient.locator("#refills")).to_contain_text("No open refill requests.")
    await patient.evaluate("window.stillTheSamePage = true")
    await assert_accessible(patient, phone=True)

    # In the console, Dr. Marsh releases it with a note.
    await doctor.goto(f"{server.url}/console/results.html")
    item = doctor.locator(f"[data-result-id='{result_id}']")
    await expect(item.get_by_role("heading")).to_have_text(f"María Álvarez: {A1C_NAME}")
    await expect(item).to_contain_text("7.1 %")
    await assert_accessible(doctor)
    await item.get_by_label("Note for María Álvarez (optional)").fill("Down again <b>nicely</b>. Keep it up!")
    await item.get_by_role("button", name=re.compile("^Release to patient")).click()
    await expect(doctor.locator("#page-status")).to_contain_text(f"Released {A1C_NAME} to María Álvarez.")
    await expect(doctor.locator("#queue-list")).to_contain_text("No results are waiting for your review.")

    # It appears on the patient's dashboard without a reload.
    link = released.get_by_role("link", name=A1C_NAME)
    await expect(link).to_be_visible()
    await expect(released).to_contain_text("Outside the reference range")
    await expect(released).to_contain_text("Your clinician left a note.")
    assert await patient.evaluate("window.stillTheSamePage === true")

    # Opening it shows the value, the note (as text) and the history chart with its table.
    await link.click()
    await patient.wait_for_url(re.compile(r"/app/records\.html\?result="))
    chart = patient.get_by_role("img", name=f"{A1C_NAME} over time")
    await expect(chart).to_be_visible()
    figure = patient.locator("figure.lab-chart")
    await expect(figure.locator("tbody tr")).to_have_count(3)  # a year ago, last visit, today
    await expect(figure.locator("tbody")).to_contain_text("7.1 %")
    await expect(patient.get_by_text("Down again <b>nicely</b>. Keep it up!")).to_be_visible()
    await expect(patient.get_by_text("Results typically take two to four days", exact=False)).to_be_visible()
    await assert_accessible(patient, phone=True)

    # The whole record downloads as a FHIR Bundle, the released result in it.
    async with patient.expect_download() as download_info:
        await patient.get_by_role("link", name="Download my record (FHIR)").click()
    download = await download_info.value
    assert re.fullmatch(r"health-record-\d{4}-\d{2}-\d{2}\.json", download.suggested_filename)
    saved = Path(await download.path())
    bundle = json.loads(await asyncio.to_thread(saved.read_text, encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    values = [e["resource"].get("valueQuantity", {}).get("value") for e in bundle["entry"]
              if e["resource"]["resourceType"] == "Observation"
              and e["resource"]["code"]["coding"][0]["code"] == A1C]
    assert sorted(values) == [7.1, 7.6, 8.4]

    # Back on the dashboard, the opened result is no longer new.
    await patient.goto(f"{server.url}/app/dashboard.html")
    await expect(results.get_by_role("link", name=re.compile("^Glucose"))).to_be_visible()
    await expect(released).to_have_count(0)
    assert patient.errors == [] and doctor.errors == []  # type: ignore[attr-defined]
    await patient.context.close()
    await doctor.context.close()
