"""Waiting-room displays: staff add one and get a code, the screen exchanges the
code (once) for a token, the board shows ticket numbers only, unpairing stops it
at once, and guessing codes is throttled per address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio

from rtc_server.auth.models import Role
from rtc_server.rooms.displays import PAIR_TRIES, new_code
from rtc_server.rooms.models import WaitingDisplay
from tests.harness import csrf_client
from tests.media.visit_helpers import (
    api_client,
    audit_rows,
    check_in_body,
    make_clinic,
    person,
    visit_app,
)


@pytest_asyncio.fixture
async def app(settings) -> AsyncIterator[object]:
    application = visit_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_paired_screen_shows_ticket_numbers_only_until_it_is_unpaired(
    app, session_factory, settings
) -> None:
    clinic = await make_clinic(session_factory, settings)
    staff = await person(session_factory, settings, "front.desk", role=Role.staff)
    async with api_client(app, staff) as desk, api_client(app, clinic.patient) as patient, \
            api_client(app, clinic.provider) as provider:
        r = await desk.post("/api/v1/displays", json={"name": "Lobby TV",
                                                      "practitioner_id": clinic.practitioner_id})
        assert r.status_code == 201, r.text
        code = r.json()["code"]
        assert len(code) == 9 and code[4] == "-"
        screen = await csrf_client(app)
        try:
            paired = await screen.post("/api/v1/displays/pair", json={"code": code.lower()})
            assert paired.status_code == 200, paired.text
            token = paired.json()["token"]
            again = await screen.post("/api/v1/displays/pair", json={"code": code})
            assert again.status_code == 422  # a code works once
            bearer = {"Authorization": f"Bearer {token}"}

            visit_id = (await patient.post("/api/v1/visits/check-in", json=check_in_body(
                clinic.appointment_id, reason="Chest pain since Monday"))).json()["visit_id"]
            board = await screen.get("/api/v1/displays/board", headers=bearer)
            assert board.json()["waiting"] == [1] and board.json()["now_seeing"] == []
            assert "Maria" not in board.text and "Lopez" not in board.text and "Chest" not in board.text

            [w] = (await provider.get("/api/v1/visits/waiting-room")).json()["waiting"]
            await provider.post(f"/api/v1/visits/{visit_id}/admit",
                                json={"participant_id": w["participant_id"]})
            board = (await screen.get("/api/v1/displays/board", headers=bearer)).json()
            assert (board["waiting"], board["now_seeing"], board["name"]) == ([], [1], "Lobby TV")

            [listed] = (await desk.get("/api/v1/displays")).json()
            assert listed["paired_at"] and listed["code"] is None
            assert (await desk.post(f"/api/v1/displays/{listed['id']}/revoke")).status_code == 200
            assert (await screen.get("/api/v1/displays/board", headers=bearer)).status_code == 401
            assert (await screen.get("/api/v1/displays/board")).status_code == 401
        finally:
            await screen.aclose()
        assert (await patient.post("/api/v1/displays", json={"name": "Mine"})).status_code == 403
    assert [r.outcome for r in await audit_rows(session_factory, "display.pair")] == ["success", "denied"]


async def test_guessing_display_codes_is_throttled_per_address(app, session_factory, settings) -> None:
    staff = await person(session_factory, settings, "front.desk", role=Role.staff)
    async with api_client(app, staff) as desk:
        code = (await desk.post("/api/v1/displays", json={"name": "Kiosk"})).json()["code"]
    screen = await csrf_client(app)
    try:
        wrong = [new_code() for _ in range(PAIR_TRIES)]
        for guess in wrong:
            r = await screen.post("/api/v1/displays/pair", json={"code": guess})
            assert r.status_code == 422
            assert r.json()["error"]["fields"][0]["message"].startswith("That code is not valid.")
        # The next try is refused whatever it is, even the right code.
        r = await screen.post("/api/v1/displays/pair", json={"code": code})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    finally:
        await screen.aclose()


async def test_an_expired_code_is_not_valid(app, session_factory, settings) -> None:
    staff = await person(session_factory, settings, "front.desk", role=Role.staff)
    async with api_client(app, staff) as desk:
        added = (await desk.post("/api/v1/displays", json={"name": "Kiosk"})).json()
    async with session_factory() as db:
        row = await db.get(WaitingDisplay, added["id"])
        assert row is not None and row.code_expires_at is not None
        row.code_expires_at -= timedelta(minutes=16)
        await db.commit()
    screen = await csrf_client(app)
    try:
        r = await screen.post("/api/v1/displays/pair", json={"code": added["code"]})
        assert r.status_code == 422
    finally:
        await screen.aclose()
