"""Files in secure messaging, in real browsers: the patient attaches an image to a
message (a file of the wrong kind or size is refused in words before anything is
sent, and one whose bytes are not an image is refused by the server), the
provider sees the file's name as a download link and downloads the very bytes.
The composer with its "Attach a file" control passes axe."""

# ruff: noqa: F811 (the fixtures imported from test_messaging are parameters here)
from __future__ import annotations

import base64
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.axe import assert_accessible
from tests.browser.test_messaging import (  # noqa: F401 (fixtures)
    care_team,
    doctor_context,
    listening,
    log_of,
    watch_errors,
)

pytestmark = pytest.mark.browser

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
#: A 1x1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
                       "hgGAWjR9awAAAABJRU5ErkJggg==")


async def test_patient_attaches_an_image_and_the_provider_downloads_it(
    live_server: Any, browser_page: Page, doctor_context: Any,
) -> None:
    patient = await watch_errors(browser_page)
    await care_team(live_server, patient.context, doctor_context)
    # New Message can carry a file too.
    await patient.goto(live_server.url + "/app/messages.html?new=1")
    await listening(patient)
    compose = patient.locator("#compose-view")
    await compose.get_by_role("radio", name="Medical question").check()
    await compose.get_by_label("Subject").fill("Rash on my arm")
    await compose.get_by_label("Message", exact=True).fill("It started on Monday.")
    await compose.get_by_label("Attach a file").set_input_files(files=[
        {"name": "results.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    await expect(compose.locator(".composer__files li[data-state='ready']")).to_contain_text("results.pdf")
    await assert_accessible(patient, phone=True)
    await compose.get_by_role("button", name="Send message").click()
    await expect(patient.get_by_role("heading", name="Rash on my arm", level=2)).to_be_visible()
    await expect(log_of(patient).get_by_role("link", name="results.pdf")).to_be_visible()

    attach = patient.locator(".conversation").get_by_label("Attach a file")
    await expect(attach).to_be_visible()
    hint = patient.locator(".composer__attach .hint").first
    await expect(hint).to_contain_text("up to 10.0 MB")
    # The wrong kind is refused in words before any upload.
    await attach.set_input_files(files=[{"name": "setup.exe", "mimeType": "application/x-msdownload",
                                         "buffer": b"MZ" + b"\x00" * 100}])
    error = patient.locator(".composer .field-error")
    await expect(error).to_contain_text("“setup.exe” cannot be attached")
    # A page named like an image is judged by its bytes on the server.
    await attach.set_input_files(files=[{"name": "photo.png", "mimeType": "image/png",
                                         "buffer": b"<html><script>alert(1)</script></html>"}])
    await expect(error).to_contain_text("Only PNG, JPEG, GIF or WebP images, or PDF documents")
    failed = patient.locator(".composer__files li[data-state='failed']")
    await failed.get_by_role("button", name="Remove photo.png").click()
    await expect(failed).to_have_count(0)

    # The real image: attached, then sent with a line of text, with the keyboard.
    await attach.set_input_files(files=[{"name": "rash.png", "mimeType": "image/png", "buffer": PNG}])
    await expect(patient.locator(".composer__files li[data-state='ready']")).to_contain_text("rash.png")
    await assert_accessible(patient, phone=True)
    box = patient.get_by_label("Your message")
    await box.fill("Here is a photo.")
    await box.press("Control+Enter")
    mine = log_of(patient).locator(".msg--mine").last
    await expect(mine.locator(".msg__body")).to_have_text("Here is a photo.")
    await expect(mine.get_by_role("link", name="rash.png")).to_be_visible()
    await expect(mine.locator(".msg__status")).to_have_text("Sent")

    # The provider opens the conversation and downloads the file.
    doctor = await watch_errors(await doctor_context.new_page())
    await doctor.goto(live_server.url + "/console/messages.html")
    row = doctor.locator("#conversation-list .conversation-item")
    await row.get_by_role("link").click()
    link = log_of(doctor).get_by_role("link", name="rash.png")
    await expect(link).to_be_visible()
    await expect(log_of(doctor).locator(".msg__files").last).to_contain_text("PNG image")
    async with doctor.expect_download() as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename == "rash.png"
    with open(await download.path(), "rb") as f:
        assert f.read() == PNG
    await assert_accessible(doctor)
    assert patient.errors == [] and doctor.errors == []  # type: ignore[attr-defined]
