"""The Help Desk: a signed-in patient files a ticket, help-desk staff reply, the
patient reads the reply and is told (without the reply in the email); someone
who cannot sign in uses the public form, is limited per IP address and gets the
reply by email; help-desk staff see tickets, never charts; another person's
ticket looks absent."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlmodel import select

from rtc_server.auth.models import Role
from rtc_server.broker.base import Inbox
from rtc_server.notify.events import user_channel
from rtc_server.portal.helpdesk.models import HelpTicket
from tests.api.test_refills import (
    audit_rows,
    make_clinic,
    signed_in,
    user_id,
)
from tests.harness import create_patient, csrf_client

TICKET = {"topic": "technical", "subject": "The records page is blank",
          "message": "Since yesterday the Medical Records tab shows nothing on my phone."}
PUBLIC = {"name": "Walter Kowalski", "email": "walter.k@example.net", "subject": "Locked out",
          "message": "I typed my password wrong too often and now I cannot log in."}


async def from_ip(app: Any, ip: str) -> httpx.AsyncClient:
    """A signed-out browser at ``ip`` (with the CSRF cookie the pages use)."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
                               base_url="http://testserver")
    client.headers["X-CSRF-Token"] = (await client.get("/api/v1/auth/csrf")).json()["csrf_token"]
    return client


async def tickets_in_db(session_factory: Any) -> list[HelpTicket]:
    async with session_factory() as db:
        return list((await db.exec(select(HelpTicket))).all())


async def test_patient_files_a_ticket_staff_reply_and_the_patient_reads_it(
    app, session_factory, smtp, drain_mail,
) -> None:
    c = await make_clinic(app, session_factory)
    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff, display_name="Dana Reyes")
    ids = {name: await user_id(session_factory, name) for name in ("maria.lopez", "front.desk")}
    inbox = Inbox()
    sub = await app.state.broker.subscribe([user_channel(i) for i in ids.values()], inbox.put)
    try:
        r = await c.maria.post("/api/v1/help/tickets", json=TICKET)
        assert r.status_code == 201, r.text
        ticket = r.json()
        assert ticket["status"] == "open" and ticket["reference"] == f"HD-{ticket['id']:05d}"
        assert [(m["author"], m["from_staff"]) for m in ticket["messages"]] == [("You", False)]
        assert await asyncio.wait_for(inbox.get(), 5) == (
            user_channel(ids["front.desk"]), {"kind": "help_ticket_queue", "id": ticket["id"]})

        queue = (await staff.get("/api/v1/console/tickets")).json()
        assert [(t["id"], t["subject"], t["requester"]["name"], t["requester"]["kind"]) for t in queue] == [
            (ticket["id"], "The records page is blank", "Maria Lopez", "account")]
        seen = (await staff.get(f"/api/v1/console/tickets/{ticket['id']}")).json()
        assert seen["messages"][0]["author"] == "Maria Lopez"
        assert seen["requester"]["email"] == "maria.lopez@example.org"

        r = await staff.post(f"/api/v1/console/tickets/{ticket['id']}/reply", json={
            "message": "Thanks, Maria. Please update your browser and try again; it works on Safari 17."})
        assert r.status_code == 200 and r.json()["status"] == "answered"
        got = [await asyncio.wait_for(inbox.get(), 5) for _ in range(2)]
        assert (user_channel(ids["maria.lopez"]), {"kind": "help_ticket", "id": ticket["id"]}) in got
    finally:
        await sub.close()
    assert (await staff.get("/api/v1/console/tickets")).json() == []  # answered: no longer waiting

    mine = (await c.maria.get("/api/v1/help/tickets")).json()
    assert [(t["id"], t["status"], t["new_reply"]) for t in mine] == [(ticket["id"], "answered", True)]
    read = (await c.maria.get(f"/api/v1/help/tickets/{ticket['id']}")).json()
    authors = [(m["author"], m["from_staff"]) for m in read["messages"]]
    assert authors == [("You", False), ("Dana Reyes", True)]
    assert "Safari 17" in read["messages"][1]["body"]
    assert not (await c.maria.get("/api/v1/help/tickets")).json()[0]["new_reply"]

    await drain_mail()
    [mail] = smtp.to("maria.lopez@example.org")
    assert "There is a reply to your help desk request in the portal." in smtp.text(mail)
    assert "Safari" not in smtp.text(mail) and "records page" not in smtp.text(mail)

    r = await c.maria.post(f"/api/v1/help/tickets/{ticket['id']}/messages",
                           json={"message": "Updated, and it works now. Thank you!"})
    assert r.status_code == 200 and r.json()["status"] == "open"
    r = await staff.post(f"/api/v1/console/tickets/{ticket['id']}/close")
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert (await staff.post(f"/api/v1/console/tickets/{ticket['id']}/close")).status_code == 409
    for action in ("helpdesk.open", "helpdesk.staff_read", "helpdesk.reply", "helpdesk.read",
                   "helpdesk.message", "helpdesk.close"):
        rows = await audit_rows(session_factory, action)
        assert rows and rows[0].outcome == "success", action
    assert (await audit_rows(session_factory, "helpdesk.reply"))[0].patient_id == c.maria_id


async def test_someone_who_cannot_sign_in_gets_the_reply_by_email(
    app, session_factory, smtp, drain_mail,
) -> None:
    visitor = await from_ip(app, "203.0.113.7")
    r = await visitor.post("/api/v1/help/requests", json={**PUBLIC, "email": "not an address"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "email"
    r = await visitor.post("/api/v1/help/requests", json=PUBLIC)
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["reply_to"] == "walter.k@example.net" and sent["reference"].startswith("HD-")
    [ticket] = await tickets_in_db(session_factory)
    assert ticket.user_id is None and ticket.topic == "login"

    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    [item] = (await staff.get("/api/v1/console/tickets")).json()
    assert item["requester"] == {"kind": "email", "name": "Walter Kowalski", "username": None,
                                 "email": "walter.k@example.net", "role": None}
    message = "Hello Walter, your account is unlocked.\n\nUse Forgot your password? to set a new one."
    reply = {"close": True, "message": message}
    # Anyone can claim any name on the public form: staff confirm the emailed text holds no health data.
    r = await staff.post(f"/api/v1/console/tickets/{ticket.id}/reply", json=reply)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "no_health_data"
    r = await staff.post(f"/api/v1/console/tickets/{ticket.id}/reply", json={**reply, "no_health_data": True})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    await drain_mail()
    [mail] = smtp.to("walter.k@example.net")
    text = smtp.text(mail)
    assert sent["reference"] in str(mail["Subject"])
    assert "your account is unlocked." in text and "Use Forgot your password? to set a new one." in text
    rows = await audit_rows(session_factory, "helpdesk.open_public")
    assert [(e.outcome, e.ip) for e in rows] == [("success", "203.0.113.7")]


async def test_the_public_form_is_limited_per_ip_address(app, session_factory) -> None:
    busy = await from_ip(app, "198.51.100.20")
    answers = [await busy.post("/api/v1/help/requests", json=PUBLIC) for _ in range(6)]
    assert [r.status_code for r in answers] == [202] * 5 + [429]
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert "call the clinic" in answers[-1].json()["error"]["message"]
    other = await from_ip(app, "198.51.100.21")
    assert (await other.post("/api/v1/help/requests", json=PUBLIC)).status_code == 202
    assert len(await tickets_in_db(session_factory)) == 6
    rows = await audit_rows(session_factory, "helpdesk.open_public")
    assert [e.outcome for e in rows].count("rate_limited") == 1


async def test_help_desk_staff_see_tickets_never_charts_or_refills(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    for path in ("/api/v1/console/patients?q=lopez", f"/api/v1/console/patients/{c.maria_id}/chart",
                 "/api/v1/console/refills"):
        r = await staff.get(path)
        assert r.status_code == 403, path
    r = await staff.post(f"/api/v1/console/patients/{c.maria_id}/cross-cover",
                         json={"reason": "I would like to see the chart"})
    assert r.status_code == 403
    denied = [e for a in ("patient.search", "chart.read", "refill.queue", "chart.cross_cover")
              for e in await audit_rows(session_factory, a) if e.outcome == "denied"]
    assert len(denied) == 4 and all(e.actor_role == "staff" for e in denied)
    # Providers and patients do not work the help desk's queue.
    for client in (c.dr, c.maria):
        assert (await client.get("/api/v1/console/tickets")).status_code == 403
    assert (await (await csrf_client(app)).get("/api/v1/console/tickets")).status_code == 401


async def test_another_persons_ticket_looks_absent(app, session_factory) -> None:
    c = await make_clinic(app, session_factory)
    ticket = (await c.maria.post("/api/v1/help/tickets", json=TICKET)).json()
    james = await signed_in(app, session_factory, "james.okafor",
                            patient_id=await create_patient(session_factory, given="James", family="Okafor"))
    for path in (f"/api/v1/help/tickets/{ticket['id']}", "/api/v1/help/tickets/999999"):
        assert (await james.get(path)).status_code == 404
    r = await james.post(f"/api/v1/help/tickets/{ticket['id']}/messages",
                         json={"message": "Let me in please"})
    assert r.status_code == 404
    assert (await james.get("/api/v1/help/tickets")).json() == []
    denied = [e for a in ("helpdesk.read", "helpdesk.message") for e in await audit_rows(session_factory, a)
              if e.outcome == "denied"]
    assert len(denied) == 3
    staff = await signed_in(app, session_factory, "front.desk", role=Role.staff)
    assert (await staff.get("/api/v1/console/tickets/999999")).status_code == 404
