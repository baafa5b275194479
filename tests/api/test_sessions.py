"""Server-side sessions: log-out ends them, idle and absolute limits end
them, the deadlines are reported, and users can end their other sessions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from rtc_server.audit import AuditEvent
from rtc_server.auth.models import AuthSession
from rtc_server.auth.tokens import token_hash
from rtc_server.db import as_utc, utcnow
from tests.harness import create_user, sign_in


async def signed_in_token(client, username: str, secrets_seen) -> str:
    """Log in; the session token."""
    await sign_in(client, username, secrets_seen)
    return client.cookies["rtc_session"]


async def shift_session(session_factory, token: str, **moved: timedelta) -> None:
    """Move a session's timestamps into the past (as if time had passed)."""
    async with session_factory() as s:
        sess = await s.get(AuthSession, token_hash(token))
        for column, delta in moved.items():
            setattr(sess, column, as_utc(getattr(sess, column)) - delta)
        s.add(sess)
        await s.commit()


async def test_logout_ends_the_session_even_if_the_cookie_is_replayed(
    client, make_client, session_factory, secrets_seen
) -> None:
    await create_user(session_factory, "maria.lopez")
    token = await signed_in_token(client, "maria.lopez", secrets_seen)
    r = await client.post("/api/v1/auth/logout")
    assert r.status_code == 204
    assert "rtc_session=" in r.headers["set-cookie"]
    assert "rtc_session" not in client.cookies
    replay = await make_client()
    replay.cookies.set("rtc_session", token)
    assert (await replay.get("/api/v1/auth/session")).status_code == 401
    assert (await replay.get("/api/v1/account")).status_code == 401
    async with session_factory() as s:
        assert (await s.get(AuthSession, token_hash(token))).ended_at is not None


async def test_logout_without_a_session_is_harmless(client) -> None:
    assert (await client.post("/api/v1/auth/logout")).status_code == 204


async def test_session_reports_its_deadlines_without_extending_them(
    client, session_factory, secrets_seen
) -> None:
    await create_user(session_factory, "maria.lopez")
    token = await signed_in_token(client, "maria.lopez", secrets_seen)
    await shift_session(session_factory, token, last_seen_at=timedelta(minutes=10))
    body = (await client.get("/api/v1/auth/session")).json()
    assert body["idle_timeout_seconds"] == 30 * 60
    assert body["csrf_token"] == client.headers["X-CSRF-Token"]
    idle = datetime.fromisoformat(body["idle_expires_at"])
    absolute = datetime.fromisoformat(body["absolute_expires_at"])
    now = utcnow()
    assert timedelta(minutes=19) < idle - now <= timedelta(minutes=20)
    assert timedelta(hours=11, minutes=59) < absolute - now <= timedelta(hours=12)
    # Asking again does not count as activity: the page may poll it for the warning.
    again = (await client.get("/api/v1/auth/session")).json()
    assert again["idle_expires_at"] == body["idle_expires_at"]


async def test_activity_pushes_the_idle_deadline(client, session_factory, secrets_seen) -> None:
    await create_user(session_factory, "maria.lopez")
    token = await signed_in_token(client, "maria.lopez", secrets_seen)
    await shift_session(session_factory, token, last_seen_at=timedelta(minutes=20))
    assert (await client.get("/api/v1/account")).status_code == 200
    async with session_factory() as s:
        last_seen = as_utc((await s.get(AuthSession, token_hash(token))).last_seen_at)
    assert utcnow() - last_seen < timedelta(minutes=1)


async def test_idle_timeout_ends_the_session(client, session_factory, secrets_seen) -> None:
    await create_user(session_factory, "maria.lopez")
    token = await signed_in_token(client, "maria.lopez", secrets_seen)
    await shift_session(session_factory, token, last_seen_at=timedelta(minutes=31))
    assert (await client.get("/api/v1/account")).status_code == 401
    assert (await client.get("/api/v1/auth/session")).status_code == 401


async def test_absolute_limit_ends_an_active_session(client, session_factory, secrets_seen) -> None:
    await create_user(session_factory, "maria.lopez")
    token = await signed_in_token(client, "maria.lopez", secrets_seen)
    await shift_session(session_factory, token, created_at=timedelta(hours=12, minutes=1),
                        expires_at=timedelta(hours=12, minutes=1))
    assert (await client.get("/api/v1/account")).status_code == 401


async def test_user_lists_sessions_and_ends_another_one(
    client, make_client, session_factory, secrets_seen
) -> None:
    await create_user(session_factory, "maria.lopez")
    await sign_in(client, "maria.lopez", secrets_seen)
    phone = await make_client()
    await sign_in(phone, "maria.lopez", secrets_seen)

    listed = (await client.get("/api/v1/account/sessions")).json()
    assert len(listed) == 2
    assert sorted(s["current"] for s in listed) == [False, True]
    other = next(s for s in listed if not s["current"])
    assert set(other) == {"id", "created_at", "last_seen_at", "user_agent", "ip", "current"}

    assert (await client.delete(f"/api/v1/account/sessions/{other['id']}")).status_code == 204
    assert (await phone.get("/api/v1/account")).status_code == 401
    assert (await client.get("/api/v1/account")).status_code == 200
    assert len((await client.get("/api/v1/account/sessions")).json()) == 1
    assert (await client.delete(f"/api/v1/account/sessions/{other['id']}")).status_code == 404


async def test_someone_elses_session_id_is_not_found_and_the_attempt_is_audited(
    client, make_client, session_factory, secrets_seen
) -> None:
    await create_user(session_factory, "maria.lopez")
    john_id = await create_user(session_factory, "john.smith")
    await sign_in(client, "maria.lopez", secrets_seen)
    intruder = await make_client()
    await sign_in(intruder, "john.smith", secrets_seen)
    async with session_factory() as s:
        maria_sessions = (await s.exec(select(AuthSession).where(col(AuthSession.ended_at).is_(None)))).all()
    ids = [x.public_id for x in maria_sessions]
    mine = {s["id"] for s in (await intruder.get("/api/v1/account/sessions")).json()}
    victim = next(i for i in ids if i not in mine)
    r = await intruder.delete(f"/api/v1/account/sessions/{victim}")
    unknown = await intruder.delete("/api/v1/account/sessions/0123456789abcdef")
    assert r.status_code == unknown.status_code == 404
    assert r.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert (await client.get("/api/v1/account")).status_code == 200
    async with session_factory() as s:
        [row] = (await s.exec(select(AuditEvent).where(AuditEvent.outcome == "denied"))).all()
    assert (row.action, row.actor_id, row.resource) == ("session.end", john_id, f"session:{victim}")
    assert row.request_id == r.json()["error"]["request_id"]


async def test_an_ended_session_cannot_be_revived_by_activity(client, session_factory, secrets_seen) -> None:
    await create_user(session_factory, "maria.lopez")
    token = await signed_in_token(client, "maria.lopez", secrets_seen)
    async with session_factory() as s:
        await s.exec(update(AuthSession).where(col(AuthSession.id) == token_hash(token))
                     .values(ended_at=utcnow()))
        await s.commit()
    assert (await client.get("/api/v1/auth/session")).status_code == 401
