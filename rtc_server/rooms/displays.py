"""Waiting-room displays: a clinic screen (a lobby TV, a kiosk) that shows the
queue by ticket number only, paired once by staff and then running unattended
without a user session.

- Staff (or the provider) add a display: it gets a pairing code of 8 characters
  from a 32-letter alphabet (40 bits), valid ``CODE_MINUTES``, stored only as
  an HMAC. Typing the code on the screen (``pair``) exchanges it, once, for a
  device token (stored as a hash); the code is gone after that.
- Guessing a code: each address may try ``PAIR_TRIES`` codes per
  ``PAIR_WINDOW_SECONDS`` (then 429); a wrong or expired code says only "not
  valid". Against a code alive for 15 minutes, 10 tries per 15 minutes from
  each of 10,000 addresses is a chance of about one in ten million.
- The board (``board``) carries ticket numbers and nothing else: no names, no
  reasons, nothing that is health data. It is read with the device token; a
  revoked display gets 401 and goes back to its pairing screen.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import throttle
from rtc_server.auth.actor import Actor, RequestMeta
from rtc_server.auth.models import Role
from rtc_server.auth.tokens import token_hash
from rtc_server.errors import InvalidInput, NotFound, Unauthorized
from rtc_server.records.models import Practitioner
from rtc_server.rooms.access import linked_practitioner
from rtc_server.rooms.models import Participant, ParticipantState, Visit, VisitStatus, WaitingDisplay
from rtc_server.rooms.shapes import BoardOut, DisplayOut, PairedOut

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1: read off a screen, typed on a remote
CODE_LENGTH = 8
CODE_MINUTES = 15
PAIR_TRIES = 10
PAIR_WINDOW_SECONDS = 15 * 60
#: "Now being seen" shows those admitted in the last this many minutes.
NOW_SEEN_MINUTES = 10
#: A display's last_seen_at is written at most this often.
SEEN_EVERY = timedelta(minutes=1)


def _normal(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def _code_hash(code: str, secret: bytes) -> str:
    return throttle.key_for("display-code", _normal(code), secret)[-32:]


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


async def _record(db: AsyncSession, action: str, *, actor: Actor | None = None, outcome: str = "success",
                  resource: str | None = None, meta: RequestMeta | None = None) -> None:
    m = actor.meta if actor is not None else meta
    await audit.record(
        db, action=action, outcome=outcome, actor_id=actor.user_id if actor else None,
        actor_role=str(actor.role) if actor else None, resource=resource,
        request_id=m.request_id if m else None, ip=m.ip if m else None,
    )


async def _managed_practitioner(db: AsyncSession, actor: Actor, practitioner_id: int | None,
                                action: str) -> int | None:
    """Providers manage displays of their own waiting room; staff any (or the whole clinic's)."""
    if actor.role == Role.provider:
        own = await linked_practitioner(db, actor)
        actor.require(own is not None and practitioner_id in (None, own), action=action)
        return own
    actor.require_role(Role.staff, action=action)
    if practitioner_id is not None and await db.get(Practitioner, practitioner_id) is None:
        raise InvalidInput("practitioner_id", "Choose a provider.")
    return practitioner_id


def _out(d: WaitingDisplay, code: str | None = None) -> DisplayOut:
    return DisplayOut(id=d.id or 0, name=d.name, practitioner_id=d.practitioner_id, code=code,
                      code_expires_at=d.code_expires_at if code else None, paired_at=d.paired_at,
                      revoked_at=d.revoked_at, last_seen_at=d.last_seen_at)


async def add_display(db: AsyncSession, actor: Actor, *, name: str, practitioner_id: int | None,
                      secret: bytes, now: datetime) -> DisplayOut:
    """A new display and its pairing code (shown once, to the person who added it)."""
    practitioner_id = await _managed_practitioner(db, actor, practitioner_id, "display.add")
    code = new_code()
    display = WaitingDisplay(name=name, practitioner_id=practitioner_id, code_hash=_code_hash(code, secret),
                             code_expires_at=now + timedelta(minutes=CODE_MINUTES),
                             created_by=actor.user_id, created_at=now)
    db.add(display)
    await db.flush()
    await _record(db, "display.add", actor=actor, resource=f"display:{display.id}")
    await db.commit()
    return _out(display, code)


async def list_displays(db: AsyncSession, actor: Actor) -> list[DisplayOut]:
    practitioner_id = await _managed_practitioner(db, actor, None, "display.list")
    query = select(WaitingDisplay).order_by(col(WaitingDisplay.id))
    if actor.role == Role.provider:
        query = query.where(WaitingDisplay.practitioner_id == practitioner_id)
    return [_out(d) for d in (await db.exec(query)).all()]


async def revoke(db: AsyncSession, actor: Actor, display_id: int, now: datetime) -> DisplayOut:
    """Unpair a display: its token stops working at once (it shows its pairing screen)."""
    display = await db.get(WaitingDisplay, display_id)
    if display is None:
        raise NotFound()
    await _managed_practitioner(db, actor, display.practitioner_id, "display.revoke")
    display.revoked_at = display.revoked_at or now
    display.token_hash = None
    display.code_hash = None
    await _record(db, "display.revoke", actor=actor, resource=f"display:{display_id}")
    await db.commit()
    return _out(display)


async def pair(db: AsyncSession, code: str, meta: RequestMeta, *, secret: bytes,
               now: datetime) -> PairedOut:
    """Exchange a pairing code for the display's token (once). Throttled per address."""
    key = throttle.key_for("display-pair:ip", meta.ip or "-", secret)
    await throttle.hit(throttle.engine_of(db), key, limit=PAIR_TRIES, window_seconds=PAIR_WINDOW_SECONDS)
    display = (await db.exec(select(WaitingDisplay).where(
        WaitingDisplay.code_hash == _code_hash(code, secret)))).first()
    if (display is None or display.revoked_at is not None or display.code_expires_at is None
            or display.code_expires_at < now):
        await _record(db, "display.pair", outcome="denied", meta=meta)
        await db.commit()
        raise InvalidInput("code", "That code is not valid. Check it, or ask the clinic for a new one.")
    token = secrets.token_urlsafe(32)
    display.token_hash = token_hash(token)
    display.code_hash = None
    display.code_expires_at = None
    display.paired_at = now
    display.last_seen_at = now
    await _record(db, "display.pair", meta=meta, resource=f"display:{display.id}")
    await db.commit()
    await throttle.refund(throttle.engine_of(db), key)
    return PairedOut(token=token, name=display.name)


async def board(db: AsyncSession, token: str | None, now: datetime) -> BoardOut:
    """What the screen shows: ticket numbers waiting and now being seen."""
    if not token or len(token) > 128:
        raise Unauthorized()
    display = (await db.exec(select(WaitingDisplay).where(
        WaitingDisplay.token_hash == token_hash(token)))).first()
    if display is None or display.revoked_at is not None:
        raise Unauthorized("This display is not paired. Ask the clinic's staff for a code.")
    open_visits = select(Participant.ticket, Participant.state, Participant.admitted_at,
                         Participant.checked_in_at).join(
        Visit, col(Visit.id) == col(Participant.visit_id)).where(
        Visit.status == VisitStatus.open, col(Participant.ticket).is_not(None))
    if display.practitioner_id is not None:
        open_visits = open_visits.where(Visit.practitioner_id == display.practitioner_id)
    rows = (await db.exec(open_visits)).all()
    waiting = sorted((r for r in rows if r.state == ParticipantState.waiting),
                     key=lambda r: (r.checked_in_at or now))
    recent = now - timedelta(minutes=NOW_SEEN_MINUTES)
    seen = sorted((r for r in rows if r.state == ParticipantState.admitted and r.admitted_at
                   and r.admitted_at >= recent), key=lambda r: r.admitted_at, reverse=True)
    if display.last_seen_at is None or now - display.last_seen_at > SEEN_EVERY:
        display.last_seen_at = now
        await db.commit()
    return BoardOut(name=display.name, waiting=[r.ticket for r in waiting],
                    now_seeing=[r.ticket for r in seen][:4], updated_at=now)
