"""The Medical Records tab in a real browser: every part of the record with honest
empty parts, the note on how long results take and which tests a clinician reviews
first, a result opened with the keyboard showing its history chart and table, and the
printable record; accessible and without sideways scrolling on a phone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.async_api import expect

from rtc_server import audit
from rtc_server.auth.models import Role
from rtc_server.portal.labs.models import LabHoldRule
from tests.api.test_records import import_demo
from tests.browser.axe import assert_accessible
from tests.browser.helpers import PHONE, path_of, sideways_overflow
from tests.harness import create_signed_in_user, server_db

pytestmark = pytest.mark.browser

CREATININE = "Creatinine [Mass/volume] in Serum or Plasma"


async def test_patient_reads_the_record_opens_a_result_and_prints(
    clinic_server, browser_page, secrets_seen,
) -> None:
    server, page = clinic_server, browser_page
    async with server_db(server) as factory:
        audit.bind_key(factory.kw["bind"], server.settings.secret)
        async with factory() as db:
            db.add(LabHoldRule(code="2823-3", display="Potassium", reason="A clinician checks it first.",
                               set_at=datetime.now(UTC)))
            await db.commit()
        clinic = await import_demo(factory, settings=server.settings)
        token = await create_signed_in_user(
            factory, server.settings, "walter.k", role=Role.patient,
            patient_id=clinic.patients["kowalski"], display_name="Walter Kowalski")
    secrets_seen.add(token)
    await page.context.add_cookies([{"name": "rtc_session", "value": token, "url": server.url}])

    failed: list[str] = []
    page.on("response", lambda r: r.status >= 400 and failed.append(path_of(r.url)))
    await page.goto(f"{server.url}/app/records.html")
    labs = page.locator("#labs")
    await expect(labs.get_by_role("heading", name=re.compile("^Creatinine"))).to_be_visible()
    await expect(page.locator("#turnaround")).to_have_text(re.compile("two to four days"))
    await expect(page.locator("#held-tests")).to_contain_text("Potassium: A clinician checks it first.")
    await expect(labs).not_to_contain_text("Potassium [Moles/volume]")  # held: not shown
    await expect(page.locator("#conditions-body")).to_contain_text("Atrial fibrillation")
    await expect(page.locator("#conditions-body")).to_contain_text("No resolved diagnoses on file.")
    await expect(page.locator("#medications-body")).to_contain_text("Apixaban 5 MG Oral Tablet")
    await expect(page.locator("#allergies-body")).to_contain_text("Allergy to sulfonamide")
    await expect(page.locator("#immunizations-body")).to_contain_text("Pneumococcal conjugate PCV 13")
    await expect(page.locator("#plans-body")).to_contain_text("Inhaler technique education")
    await expect(page.locator("#visits-body")).to_contain_text("With Dr. Elena Marsh, MD")
    creatinine = labs.locator("li.lab", has=page.get_by_role("heading", name=re.compile("^Creatinine")))
    await expect(creatinine).to_contain_text("1.5 mg/dL")
    await expect(creatinine).to_contain_text("High: outside the reference range")
    await expect(creatinine).to_contain_text("0.7 to 1.3 mg/dL")
    await expect(creatinine.get_by_text("New", exact=True)).to_be_visible()

    # Opened with the keyboard: the chart (named, described) and its table.
    opener = creatinine.get_by_role("button", name=f"Details and history of {CREATININE}")
    await opener.focus()
    await page.keyboard.press("Enter")
    await expect(opener).to_have_attribute("aria-expanded", "true")
    chart = creatinine.get_by_role("img", name=f"{CREATININE} over time")
    await expect(chart).to_be_visible()
    description = await chart.evaluate("svg => svg.querySelector('desc').textContent")
    assert "1.2 mg/dL" in description and "1.5 mg/dL" in description and "outside the range" in description
    await expect(creatinine.locator("tbody tr")).to_have_count(2)
    await expect(creatinine.get_by_text("New", exact=True)).to_have_count(0)
    await assert_accessible(page, phone=True)
    await page.set_viewport_size(PHONE)
    assert await sideways_overflow(page) == 0

    # The printable record.
    await page.get_by_role("link", name="Printable record").click()
    await page.wait_for_url(f"{server.url}/app/records-print.html")
    body = page.locator("#print-body")
    await expect(body).to_contain_text("Walter Kowalski")
    await expect(body.get_by_role("table").filter(has_text="Reference range")).to_contain_text("1.5 mg/dL")
    await expect(body).not_to_contain_text("Potassium [Moles/volume]")
    await expect(page.get_by_role("button", name="Print this record")).to_be_visible()
    await assert_accessible(page, phone=True)
    # Nothing failed but the clinic's details, which this build may not serve yet (shell.js).
    assert set(failed) <= {"/api/v1/clinic"}, failed
    assert [e for e in page.console_errors if "Failed to load resource" not in e] == []  # type: ignore[attr-defined]
