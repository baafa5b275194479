"""Files in messages over HTTP: a patient uploads an image or a PDF and sends it
in a message; her provider downloads it as an attachment, with headers that
stop a browser from running it; the type is judged by the bytes, not the name;
oversize and unknown files are refused naming the field; nobody outside the
conversation can fetch it (404, audited); files sit 0600 in a 0700 directory
under the data dir with random names. On SQLite and PostgreSQL."""

# ruff: noqa: F811 (the fixtures imported from test_chat_support are parameters here)
from __future__ import annotations

import stat
from typing import Any

import pytest
from sqlmodel import select

from rtc_server.chat.models import Attachment
from tests.api.test_chat_support import (  # noqa: F401 (fixtures)
    app,
    audit_rows,
    cid,
    clinic,
    person,
    start,
    stored_messages,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
HTML = b"<!doctype html><script>alert(1)</script>"
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 64

both = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


async def upload(p: Any, data: bytes, name: str = "scan.png", content_type: str = "image/png") -> Any:
    return await p.client.post("/api/v1/conversations/attachments", params={"name": name}, content=data,
                               headers={"Content-Type": content_type})


async def send_files(p: Any, conversation_id: int, ids: list[int], body: str = "") -> Any:
    return await p.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                               json={"body": body, "client_id": cid(), "attachments": ids})


@both
async def test_patient_sends_an_image_and_her_provider_downloads_it_as_an_attachment(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    up = await upload(clinic.maria, PNG, name="rash photo.png")
    assert up.status_code == 201, up.text
    file = up.json()
    assert (file["name"], file["content_type"], file["size"]) == ("rash photo.png", "image/png", len(PNG))

    sent = await send_files(clinic.maria, conv["id"], [file["id"]], body="Here is the rash.")
    assert sent.status_code == 201, sent.text
    assert sent.json()["seq"] == 2
    page = (await clinic.reyes.client.get(f"/api/v1/conversations/{conv['id']}/messages")).json()
    assert page["messages"][-1]["attachments"] == [file]
    assert page["messages"][-1]["body"] == "Here is the rash."

    got = await clinic.reyes.client.get(f"/api/v1/conversations/attachments/{file['id']}")
    assert got.status_code == 200
    assert got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert "rash%20photo.png" in got.headers["content-disposition"]
    assert "no-store" in got.headers["cache-control"]
    [row] = [r for r in await audit_rows(clinic.app, "chat.attachment") if r.outcome == "success"]
    assert (row.actor_id, row.patient_id) == (clinic.reyes.user_id, clinic.maria.patient_id)


async def test_a_message_may_carry_only_files_and_a_pdf_named_png_is_kept_as_a_pdf(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    file = (await upload(clinic.maria, PDF, name="results.png")).json()
    assert (file["content_type"], file["name"]) == ("application/pdf", "results.png.pdf")
    assert (await send_files(clinic.maria, conv["id"], [file["id"]])).status_code == 201
    got = await clinic.reyes.client.get(f"/api/v1/conversations/attachments/{file['id']}")
    assert got.headers["content-type"] == "application/pdf"
    # Neither text nor files: the usual rule.
    r = await clinic.maria.client.post(f"/api/v1/conversations/{conv['id']}/messages",
                                       json={"body": "", "client_id": cid()})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "body"


@pytest.mark.parametrize(("data", "name", "content_type"), [
    (HTML, "photo.png", "image/png"),
    (ELF, "setup.pdf", "application/pdf"),
    (b"MZ\x90\x00" + b"\x00" * 60, "invoice.pdf", "application/pdf"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "logo.svg", "image/svg+xml"),
])
async def test_anything_but_images_and_pdf_is_refused_by_its_bytes_whatever_its_name(
        clinic, data: bytes, name: str, content_type: str) -> None:
    r = await upload(clinic.maria, data, name=name, content_type=content_type)
    assert r.status_code == 415, r.text
    error = r.json()["error"]
    assert error["fields"][0]["field"] == "file" and "PDF" in error["fields"][0]["message"]
    async with clinic.app.state.session_factory() as db:
        assert (await db.exec(select(Attachment))).all() == []


@pytest.mark.settings(chat_attachment_max_bytes=2048)
async def test_an_oversized_file_is_refused_with_the_limit_in_words(clinic) -> None:
    r = await upload(clinic.maria, PNG + b"\x00" * 4096)
    assert r.status_code == 413
    [field] = r.json()["error"]["fields"]
    assert field["field"] == "file" and "at most" in field["message"]
    assert (await upload(clinic.maria, b"")).status_code == 422
    assert (await upload(clinic.maria, PNG)).status_code == 201


@both
async def test_nobody_outside_the_conversation_can_fetch_a_file_and_the_attempt_is_audited(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    file = (await upload(clinic.maria, PNG)).json()
    url = f"/api/v1/conversations/attachments/{file['id']}"
    # Before it is sent, it is the uploader's alone.
    assert (await clinic.reyes.client.get(url)).status_code == 404
    assert (await clinic.maria.client.get(url)).status_code == 200
    assert (await send_files(clinic.maria, conv["id"], [file["id"]])).status_code == 201
    for outsider in (clinic.sam, clinic.ortiz, clinic.root):
        r = await outsider.client.get(url)
        assert r.status_code == 404 and r.content != PNG
    assert (await clinic.sam.client.get(url + "0")).status_code == 404
    assert (await clinic.desk.client.get(url)).status_code == 200  # staff: the front desk
    denied = [r for r in await audit_rows(clinic.app, "chat.attachment") if r.outcome == "denied"]
    assert {r.actor_id for r in denied} >= {clinic.reyes.user_id, clinic.sam.user_id,
                                           clinic.ortiz.user_id}
    # Someone else's upload cannot be attached, and a sent file cannot be sent again.
    sams = (await upload(clinic.sam, PNG)).json()
    for ids in ([sams["id"]], [file["id"]]):
        r = await send_files(clinic.maria, conv["id"], ids, body="again")
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "attachments"
    assert [m.seq for m in await stored_messages(clinic.app, conv["id"])] == [1, 2]


async def test_files_are_private_under_the_data_dir_with_random_names(clinic) -> None:
    file = (await upload(clinic.maria, PNG, name="../../etc/passwd.png")).json()
    assert file["name"] == "passwd.png"
    async with clinic.app.state.session_factory() as db:
        row = await db.get(Attachment, file["id"])
    root = clinic.app.state.settings.data_dir / "attachments"
    path = root / row.key
    assert path.read_bytes() == PNG and "passwd" not in row.key
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_conversation_can_start_with_a_file_and_a_resend_is_stored_once(clinic) -> None:
    file = (await upload(clinic.maria, PNG)).json()
    started = await start(clinic.maria, attachments=[file["id"]])
    conv = started["conversation"]
    page = (await clinic.reyes.client.get(f"/api/v1/conversations/{conv['id']}/messages")).json()
    assert page["messages"][0]["attachments"][0]["id"] == file["id"]
    second = (await upload(clinic.maria, PDF, name="a.pdf")).json()
    body = {"body": "", "client_id": "files-1", "attachments": [second["id"]]}
    url = f"/api/v1/conversations/{conv['id']}/messages"
    first, again = (await clinic.maria.client.post(url, json=body),
                    await clinic.maria.client.post(url, json=body))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["seq"] == first.json()["seq"] == 2


async def test_uploads_no_message_took_are_swept_and_sent_ones_are_kept(clinic) -> None:
    from datetime import timedelta

    from rtc_server.chat.filelinks import sweep_unused

    conv = (await start(clinic.maria))["conversation"]
    kept = (await upload(clinic.maria, PNG)).json()
    assert (await send_files(clinic.maria, conv["id"], [kept["id"]])).status_code == 201
    unused = (await upload(clinic.maria, PDF, name="draft.pdf")).json()
    chat = clinic.app.state.chat
    async with clinic.app.state.session_factory() as db:
        keys = {a.id: a.key for a in (await db.exec(select(Attachment))).all()}
        later = clinic.app.state.deps.clock() + timedelta(hours=1)
        assert await sweep_unused(db, chat.files, older_than=later) == 1
        assert [a.id for a in (await db.exec(select(Attachment))).all()] == [kept["id"]]
    assert not chat.files.path(keys[unused["id"]]).exists()
    assert chat.files.path(keys[kept["id"]]).exists()
    url = "/api/v1/conversations/attachments/"
    assert (await clinic.maria.client.get(url + str(unused["id"]))).status_code == 404
    assert (await clinic.reyes.client.get(url + str(kept["id"]))).status_code == 200


async def test_a_refused_upload_is_refused_before_its_body_is_read(clinic) -> None:
    # Review finding 3: the rate limit was checked only after the whole body sat in memory.
    from rtc_server.chat.runtime import ChatLimits

    clinic.app.state.chat.limits = ChatLimits(messages_per_second=0.001, burst=1)
    assert (await upload(clinic.maria, PNG)).status_code == 201
    read = {"chunks": 0}

    async def body() -> Any:
        yield PNG
        for _ in range(8):
            read["chunks"] += 1
            yield b"\x00" * (1024 * 1024)

    r = await clinic.maria.client.post("/api/v1/conversations/attachments", params={"name": "a.png"},
                                       content=body())
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert read["chunks"] == 0
    # A file that is not an accepted kind is refused from its first bytes.
    clinic.app.state.chat.limits = ChatLimits(messages_per_second=1000, burst=1000)
    read["chunks"] = 0

    async def html() -> Any:
        yield HTML
        for _ in range(8):
            read["chunks"] += 1
            yield b"\x00" * (1024 * 1024)

    r = await clinic.maria.client.post("/api/v1/conversations/attachments", params={"name": "a.png"},
                                       content=html())
    assert r.status_code == 415 and read["chunks"] <= 1


@pytest.mark.settings(chat_uploads_in_flight=2)
async def test_one_person_may_upload_only_a_few_files_at_once(clinic) -> None:
    import asyncio

    release = asyncio.Event()
    started = {"n": 0}

    async def slow() -> Any:
        yield PNG
        started["n"] += 1
        await release.wait()
        yield b"\x00" * 16

    def post() -> Any:
        return clinic.maria.client.post("/api/v1/conversations/attachments", params={"name": "a.png"},
                                        content=slow())

    first, second = asyncio.create_task(post()), asyncio.create_task(post())
    for _ in range(200):
        if started["n"] == 2:
            break
        await asyncio.sleep(0.01)
    assert started["n"] == 2
    third = await upload(clinic.maria, PNG)
    assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_uploads"
    assert (await upload(clinic.sam, PNG)).status_code == 201  # someone else is not held up
    release.set()
    assert [(await t).status_code for t in (first, second)] == [201, 201]
    assert (await upload(clinic.maria, PNG)).status_code == 201


@pytest.mark.settings(chat_attachment_unused_files=2, chat_attachment_unused_bytes=4096)
async def test_unsent_uploads_are_capped_per_person(clinic) -> None:
    # Review finding 2: one account could fill the disk with uploads no message carries.
    conv = (await start(clinic.maria))["conversation"]
    a, b = (await upload(clinic.maria, PNG)).json(), (await upload(clinic.maria, PNG)).json()
    r = await upload(clinic.maria, PNG)
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_unsent_uploads"
    assert (await upload(clinic.sam, PNG)).status_code == 201
    assert (await send_files(clinic.maria, conv["id"], [a["id"], b["id"]])).status_code == 201
    big = await upload(clinic.maria, PNG + b"\x00" * 4096)  # past the bytes cap on its own
    assert big.status_code == 429 and big.json()["error"]["code"] == "too_many_unsent_uploads"
    assert (await upload(clinic.maria, PNG)).status_code == 201
    async with clinic.app.state.session_factory() as db:
        assert len((await db.exec(select(Attachment))).all()) == 4


@pytest.mark.settings(chat_attachment_min_free_bytes=2**62)
async def test_an_upload_is_refused_when_the_disk_is_nearly_full(clinic) -> None:
    r = await upload(clinic.maria, PNG)
    assert r.status_code == 507 and r.json()["error"]["code"] == "storage_full"
    root = clinic.app.state.settings.data_dir / "attachments"
    assert not root.exists() or list(root.iterdir()) == []


async def test_a_download_keeps_its_own_locked_down_content_security_policy(clinic) -> None:
    # Review finding 4: the site-wide CSP replaced the download's own.
    file = (await upload(clinic.maria, PDF, name="a.pdf")).json()
    got = await clinic.maria.client.get(f"/api/v1/conversations/attachments/{file['id']}")
    assert got.status_code == 200
    assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert got.headers["x-content-type-options"] == "nosniff"
    other = await clinic.maria.client.get("/api/v1/conversations/compose-info")
    assert "script-src 'self'" in other.headers["content-security-policy"]


async def test_files_left_without_a_row_are_swept_once_old(clinic) -> None:
    # Review finding 6: a file whose row never committed (a crash) or went with
    # its conversation (ON DELETE CASCADE) stayed on disk for ever.
    import os
    from datetime import timedelta

    from rtc_server.chat.filelinks import sweep_unused

    conv = (await start(clinic.maria))["conversation"]
    kept = (await upload(clinic.maria, PNG)).json()
    assert (await send_files(clinic.maria, conv["id"], [kept["id"]])).status_code == 201
    root = clinic.app.state.settings.data_dir / "attachments"
    old_orphan, new_orphan = root / ("a" * 32), root / ("b" * 32)
    old_orphan.write_bytes(PNG)
    new_orphan.write_bytes(PNG)
    two_days_ago = (clinic.app.state.deps.clock() - timedelta(days=2)).timestamp()
    os.utime(old_orphan, (two_days_ago, two_days_ago))
    async with clinic.app.state.session_factory() as db:
        row = await db.get(Attachment, kept["id"])
        os.utime(root / row.key, (two_days_ago, two_days_ago))  # an old file with its row stays
        cutoff = clinic.app.state.deps.clock() - timedelta(hours=24)
        await sweep_unused(db, clinic.app.state.chat.files, older_than=cutoff)
    assert not old_orphan.exists() and new_orphan.exists() and (root / row.key).exists()
    got = await clinic.reyes.client.get(f"/api/v1/conversations/attachments/{kept['id']}")
    assert got.status_code == 200


async def test_deleting_an_account_keeps_its_upload_rows_for_the_sweeper(clinic) -> None:
    from sqlalchemy import delete

    from rtc_server.auth.models import Role, User

    extra = (await upload(clinic.root, PNG)).status_code  # admins cannot upload
    assert extra == 403
    other = await person(clinic.app, "temp.desk", set(), role=Role.staff)
    up = (await upload(other, PNG)).json()
    await other.client.aclose()
    async with clinic.app.state.session_factory() as db:
        await db.exec(delete(User).where(User.id == other.user_id))
        await db.commit()
        row = await db.get(Attachment, up["id"])
        assert row is not None and row.uploader_id is None  # SET NULL, not CASCADE
