"""Secure messaging over plain HTTP, as the Messaging tab and the console use
it: start, send, list with unread counts, read receipts, idempotent resends,
archive, route, close; who may see what, and what is audited."""

# ruff: noqa: F811 (the fixtures imported from test_chat_support are parameters here)
from __future__ import annotations

import pytest

from rtc_server.chat.shapes import MAX_BODY_CHARS
from tests.api.test_chat_support import (  # noqa: F401 (fixtures)
    app,
    audit_rows,
    cid,
    clinic,
    send,
    start,
    stored_messages,
)


async def test_patient_starts_a_conversation_and_her_provider_sees_it_unread(clinic) -> None:
    started = await start(clinic.maria, body="My prescription ran out.")
    conv = started["conversation"]
    assert started["message"]["seq"] == 1
    assert conv["provider"]["name"] == "Dr. Ada Reyes, MD"
    assert conv["patient"]["name"] == "Maria Lopez" and conv["status"] == "open"

    inbox = (await clinic.reyes.client.get("/api/v1/conversations")).json()
    [row] = inbox["conversations"]
    assert (row["id"], row["unread"], row["last_seq"]) == (conv["id"], 1, 1)
    assert inbox["unread_total"] == 1
    assert (await clinic.reyes.client.get("/api/v1/conversations/unread")).json() == {
        "total": 1, "conversations": 1}
    # The patient's own message is not unread for her.
    assert (await clinic.maria.client.get("/api/v1/conversations")).json()["conversations"][0]["unread"] == 0


async def test_reply_and_history_come_back_in_sequence_order(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    for text in ("First line", "Second line"):
        assert (await send(clinic.maria, conv["id"], text)).status_code == 201
    r = await send(clinic.reyes, conv["id"], "I have sent the refill.")
    assert r.status_code == 201 and r.json()["seq"] == 4

    page = (await clinic.maria.client.get(f"/api/v1/conversations/{conv['id']}/messages")).json()
    assert [(m["seq"], m["body"], m["sender_role"]) for m in page["messages"]] == [
        (1, "Hello doctor", "patient"), (2, "First line", "patient"), (3, "Second line", "patient"),
        (4, "I have sent the refill.", "provider")]
    assert page["messages"][3]["sender_name"] == "Dr. Ada Reyes"
    older = (await clinic.maria.client.get(
        f"/api/v1/conversations/{conv['id']}/messages", params={"before": 3, "limit": 1})).json()
    assert [m["seq"] for m in older["messages"]] == [2] and older["more"] is True
    newer = (await clinic.maria.client.get(
        f"/api/v1/conversations/{conv['id']}/messages", params={"after": 2})).json()
    assert [m["seq"] for m in newer["messages"]] == [3, 4] and newer["more"] is False


async def test_a_resend_with_the_same_client_id_is_stored_once_with_the_same_id_and_seq(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    first = await send(clinic.maria, conv["id"], "Is 5 mg right?", client_id="phone-17")
    again = await send(clinic.maria, conv["id"], "Is 5 mg right?", client_id="phone-17")
    assert first.status_code == 201
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert (again.json()["id"], again.json()["seq"]) == (first.json()["id"], first.json()["seq"])
    assert [m.seq for m in await stored_messages(clinic.app, conv["id"])] == [1, 2]


async def test_starting_twice_with_the_same_client_id_starts_one_conversation(clinic) -> None:
    body = {"category": "billing", "subject": "My bill", "body": "Why two charges?", "client_id": "start-1"}
    first = await clinic.maria.client.post("/api/v1/conversations", json=body)
    again = await clinic.maria.client.post("/api/v1/conversations", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["conversation"]["id"] == first.json()["conversation"]["id"]
    inbox = (await clinic.maria.client.get("/api/v1/conversations")).json()
    assert len(inbox["conversations"]) == 1


async def test_read_receipts_clear_unread_move_forward_only_and_show_to_the_other_side(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    await send(clinic.maria, conv["id"], "Still there?")
    url = f"/api/v1/conversations/{conv['id']}/read"
    assert (await clinic.reyes.client.post(url, json={"seq": 2})).json() == {
        "conversation_id": conv["id"], "last_read_seq": 2}
    assert (await clinic.reyes.client.post(url, json={"seq": 1})).json()["last_read_seq"] == 2
    assert (await clinic.reyes.client.post(url, json={"seq": 99})).json()["last_read_seq"] == 2
    assert (await clinic.reyes.client.get("/api/v1/conversations/unread")).json()["total"] == 0
    seen = (await clinic.maria.client.get(f"/api/v1/conversations/{conv['id']}")).json()
    receipts = {m["name"]: m["last_read_seq"] for m in seen["members"]}
    assert receipts["Dr. Ada Reyes"] == 2


async def test_another_patients_conversation_looks_absent_and_the_attempt_is_audited(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    for method, path, body in [
        ("GET", f"/api/v1/conversations/{conv['id']}", None),
        ("GET", f"/api/v1/conversations/{conv['id']}/messages", None),
        ("POST", f"/api/v1/conversations/{conv['id']}/messages", {"body": "hi", "client_id": cid()}),
        ("POST", f"/api/v1/conversations/{conv['id']}/read", {"seq": 1}),
    ]:
        r = await clinic.sam.client.request(method, path, json=body)
        assert r.status_code == 404, (method, path)
    assert (await clinic.sam.client.get(f"/api/v1/conversations/{conv['id'] + 1000}")).status_code == 404
    denied = [row for row in await audit_rows(clinic.app, "chat.open")
              + await audit_rows(clinic.app, "chat.send") + await audit_rows(clinic.app, "chat.read")
              if row.outcome == "denied"]
    assert len(denied) == 4
    assert {(r.actor_id, r.patient_id, r.resource) for r in denied} == {
        (clinic.sam.user_id, clinic.maria.patient_id, f"conversation:{conv['id']}")}
    assert [m.seq for m in await stored_messages(clinic.app, conv["id"])] == [1]
    assert (await clinic.sam.client.get("/api/v1/conversations")).json()["conversations"] == []


async def test_a_provider_outside_the_care_team_cannot_read_until_routed_to(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    assert (await clinic.ortiz.client.get(f"/api/v1/conversations/{conv['id']}")).status_code == 404
    assert (await clinic.ortiz.client.get("/api/v1/conversations")).json()["conversations"] == []
    routed = await clinic.desk.client.post(f"/api/v1/conversations/{conv['id']}/route",
                                           json={"provider_id": clinic.ortiz.practitioner_id})
    assert routed.status_code == 200 and routed.json()["provider"]["name"] == "Dr. Ben Ortiz, MD"
    inbox = (await clinic.ortiz.client.get("/api/v1/conversations")).json()
    assert [c["id"] for c in inbox["conversations"]] == [conv["id"]]
    assert inbox["unread_total"] == 1  # routed: now a member, the question is waiting for him
    [row] = await audit_rows(clinic.app, "chat.route")
    assert (row.actor_id, row.patient_id) == (clinic.desk.user_id, clinic.maria.patient_id)


async def test_patients_cannot_route_or_close_and_the_refusal_is_audited(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    r = await clinic.maria.client.post(f"/api/v1/conversations/{conv['id']}/close")
    assert r.status_code == 403
    r = await clinic.maria.client.post(f"/api/v1/conversations/{conv['id']}/route",
                                       json={"provider_id": clinic.ortiz.practitioner_id})
    assert r.status_code == 403
    refused = [row.action for row in await audit_rows(clinic.app, "chat.close")
               + await audit_rows(clinic.app, "chat.route") if row.outcome == "denied"]
    assert sorted(refused) == ["chat.close", "chat.route"]


async def test_staff_reads_are_audited_per_opening_not_per_message(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    for i in range(5):
        await send(clinic.maria, conv["id"], f"Detail {i}")
    assert (await clinic.desk.client.get(f"/api/v1/conversations/{conv['id']}")).status_code == 200
    page = await clinic.desk.client.get(f"/api/v1/conversations/{conv['id']}/messages")
    assert len(page.json()["messages"]) == 6
    opened = [r for r in await audit_rows(clinic.app, "chat.open") if r.actor_id == clinic.desk.user_id]
    assert len(opened) == 2  # one per read of the conversation, none per message
    assert {(r.actor_role, r.patient_id, r.outcome) for r in opened} == {
        ("staff", clinic.maria.patient_id, "success")}
    assert {r.resource for r in opened} == {f"conversation:{conv['id']}",
                                            f"conversation:{conv['id']}/messages"}


async def test_an_oversized_message_is_refused_with_a_clear_error_and_nothing_is_stored(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    r = await send(clinic.maria, conv["id"], "x" * (MAX_BODY_CHARS + 1))
    assert r.status_code == 422
    [problem] = r.json()["error"]["fields"]
    assert problem["field"] == "body"
    assert f"at most {MAX_BODY_CHARS} characters" in problem["message"]
    assert (await send(clinic.maria, conv["id"], "x" * MAX_BODY_CHARS)).status_code == 201
    assert (await send(clinic.maria, conv["id"], "   ")).status_code == 422
    assert [m.seq for m in await stored_messages(clinic.app, conv["id"])] == [1, 2]


async def test_sending_faster_than_the_personal_rate_is_429_and_stores_nothing(clinic) -> None:
    from rtc_server.chat.runtime import ChatLimits

    conv = (await start(clinic.maria))["conversation"]
    clinic.app.state.chat.limits = ChatLimits(messages_per_second=0.01, burst=3)
    codes = [(await send(clinic.maria, conv["id"], f"n{i}")).status_code for i in range(5)]
    assert codes == [201, 201, 201, 429, 429]
    r = await send(clinic.maria, conv["id"], "again")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    # Another person's rate is their own.
    assert (await send(clinic.reyes, conv["id"], "Answering")).status_code == 201
    assert len(await stored_messages(clinic.app, conv["id"])) == 5


async def test_archived_conversation_leaves_the_inbox_until_a_new_message_arrives(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    r = await clinic.maria.client.post(f"/api/v1/conversations/{conv['id']}/archive")
    assert r.status_code == 200 and r.json()["archived"] is True
    assert (await clinic.maria.client.get("/api/v1/conversations")).json()["conversations"] == []
    shelf = (await clinic.maria.client.get("/api/v1/conversations", params={"archived": "true"})).json()
    assert [c["id"] for c in shelf["conversations"]] == [conv["id"]]
    # Patients cannot delete messages: there is no way to.
    assert (await clinic.maria.client.delete(f"/api/v1/conversations/{conv['id']}")).status_code == 405
    await send(clinic.reyes, conv["id"], "Please call us.")
    inbox = (await clinic.maria.client.get("/api/v1/conversations")).json()["conversations"]
    assert [(c["id"], c["unread"], c["archived"]) for c in inbox] == [(conv["id"], 1, True)]


async def test_a_closed_conversation_takes_no_messages_until_reopened(clinic) -> None:
    conv = (await start(clinic.maria))["conversation"]
    url = f"/api/v1/conversations/{conv['id']}"
    assert (await clinic.reyes.client.post(url + "/close")).json()["status"] == "closed"
    assert (await clinic.reyes.client.post(url + "/close")).status_code == 409
    r = await send(clinic.maria, conv["id"], "One more thing")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conversation_closed"
    assert (await clinic.desk.client.post(url + "/reopen")).json()["status"] == "open"
    assert (await send(clinic.maria, conv["id"], "One more thing")).json()["seq"] == 2


async def test_staff_start_a_conversation_with_a_patient_who_then_sees_it(clinic) -> None:
    started = await start(clinic.desk, subject="Your lab visit", body="Please fast before.",
                          category="appointment", patient_id=clinic.sam.patient_id)
    inbox = (await clinic.sam.client.get("/api/v1/conversations")).json()
    assert [(c["id"], c["unread"]) for c in inbox["conversations"]] == [
        (started["conversation"]["id"], 1)]
    # The tab badge and the dashboard say the same before he has ever opened it.
    assert (await clinic.sam.client.get("/api/v1/conversations/unread")).json() == {
        "total": 1, "conversations": 1}
    assert (await clinic.sam.client.get("/api/v1/dashboard")).json()["messages"]["unread"] == 1
    r = await clinic.desk.client.post("/api/v1/conversations", json={
        "category": "other", "subject": "x", "body": "y", "client_id": cid()})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "patient_id"


async def test_admins_have_no_inbox(clinic) -> None:
    assert (await clinic.root.client.get("/api/v1/conversations")).status_code == 403
    r = await clinic.root.client.post("/api/v1/conversations", json={
        "category": "other", "subject": "x", "body": "y", "client_id": cid(), "patient_id": 1})
    assert r.status_code == 403


async def test_compose_page_learns_categories_reply_time_and_emergency_number(clinic) -> None:
    info = (await clinic.maria.client.get("/api/v1/conversations/compose-info")).json()
    assert [c["value"] for c in info["categories"]] == ["question", "refill", "appointment", "billing",
                                                        "other"]
    assert "not for emergencies" in info["emergency_notice"] and info["emergency_number"] == "911"
    assert "2 business days" in info["reply_time"] and info["max_chars"] == MAX_BODY_CHARS


async def test_route_targets_list_providers_with_accounts_for_the_care_team_only(clinic) -> None:
    names = [p["name"] for p in (await clinic.desk.client.get(
        "/api/v1/conversations/route-targets")).json()]
    assert names == ["Dr. Ben Ortiz, MD", "Dr. Ada Reyes, MD"]
    assert (await clinic.maria.client.get("/api/v1/conversations/route-targets")).status_code == 403


@pytest.mark.parametrize("body", [
    {"category": "gossip", "subject": "s", "body": "b", "client_id": "c1"},
    {"category": "question", "subject": " ", "body": "b", "client_id": "c1"},
    {"category": "question", "subject": "s", "body": "b", "client_id": "has space"},
    {"category": "question", "subject": "s", "body": "bell\u0007", "client_id": "c1"},
])
async def test_bad_start_requests_name_the_field(clinic, body) -> None:
    r = await clinic.maria.client.post("/api/v1/conversations", json=body)
    assert r.status_code == 422 and r.json()["error"]["fields"]


async def test_message_text_never_reaches_the_log(clinic, log_lines) -> None:
    secret = "SECRET-BODY-7f3a-do-not-log"
    conv = (await start(clinic.maria, body=secret))["conversation"]
    await send(clinic.reyes, conv["id"], secret + "-reply")
    await clinic.maria.client.get(f"/api/v1/conversations/{conv['id']}/messages")
    assert not [line for line in log_lines if "SECRET-BODY" in line]


async def test_staff_inboxes_hear_of_a_new_conversation_at_once(clinic) -> None:
    import asyncio

    from rtc_server.broker.base import Inbox
    from rtc_server.portal.appointments.events import STAFF_CHANNEL

    inbox = Inbox()
    sub = await clinic.app.state.broker.subscribe([STAFF_CHANNEL], inbox.put)
    try:
        conv = (await start(clinic.maria))["conversation"]
        async with asyncio.timeout(5):
            channel, event = await inbox.get()
        assert channel == STAFF_CHANNEL
        assert event == {"kind": "chat.conversation", "conversation_id": conv["id"]}
    finally:
        await sub.close()


def test_messaging_tunables_are_read_from_the_rtc_chat_environment(monkeypatch, tmp_path) -> None:
    from rtc_server.chat.runtime import ChatLimits
    from rtc_server.config import Settings

    monkeypatch.setenv("RTC_CHAT_REPLY_TIME", "within 1 business day")
    monkeypatch.setenv("RTC_CHAT_BURST", "5")
    monkeypatch.setenv("RTC_CHAT_ATTACHMENT_MAX_BYTES", "2048")
    settings = Settings(data_dir=tmp_path)
    limits = ChatLimits.from_settings(settings)
    assert (limits.reply_time, limits.burst) == ("within 1 business day", 5.0)
    assert limits.messages_per_second == 2.0
    assert settings.chat_attachment_max_bytes == 2048
