"""A released result reaches the patient's open events socket (``/ws/v1/events``),
served by uvicorn: the event names the result's id and nothing else, and it is
sent only after the release committed."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import select

from rtc_server.auth.actor import NO_REQUEST
from rtc_server.auth.models import SessionStage, User
from rtc_server.auth.sessions import create_session, session_cookie_name
from tests.api.test_records import (
    import_demo,
    lab_ids,
    provider_client,
)
from tests.harness import add_user
from tests.ws.helpers import User as SocketUser
from tests.ws.helpers import open_socket, recv_json, serving

A1C = "4548-4"


async def socket_patient(served: Any, patient_id: int, secrets_seen: set[str]) -> SocketUser:
    async with served.session_factory() as db:
        user = await add_user(db, "maria.alvarez", patient_id=patient_id)
        token = await create_session(db, user, SessionStage.full, NO_REQUEST, served.settings)
        await db.commit()
    secrets_seen.add(token)
    assert user.id is not None
    return SocketUser(user.id, token)


async def test_release_reaches_the_patients_open_events_socket(settings, secrets_seen) -> None:
    async with serving(settings) as served:
        factory = served.session_factory
        clinic = await import_demo(factory, hold={A1C: "Reviewed first."}, settings=settings)
        alvarez = clinic.patients["alvarez"]
        _, recent = await lab_ids(factory, alvarez, A1C)
        patient = await socket_patient(served, alvarez, secrets_seen)
        marsh = await provider_client(served.app, factory, clinic)
        secrets_seen.add(marsh.cookies[session_cookie_name(settings)])

        async with open_socket(served, patient) as ws:
            r = await marsh.post(f"/api/v1/console/results/{recent}/release", json={"note": "All good."})
            assert r.status_code == 200, r.text
            frame = await recv_json(ws)
            assert frame["type"] == "event" and frame["channel"] == f"user:{patient.id}"
            assert frame["event"] == {"kind": "lab_result", "id": recent}  # ids only
            # A refused release (already released) announces nothing: the next frame is our pong.
            assert (await marsh.post(f"/api/v1/console/results/{recent}/release")).status_code == 409
            await ws.send(json.dumps({"type": "ping", "ref": "after"}))
            assert await recv_json(ws) == {"type": "pong", "ref": "after"}
        async with factory() as db:
            assert (await db.exec(select(User.id).where(User.patient_id == alvarez))).one() == patient.id
