"""Guests of a visit: a third or fourth participant (an interpreter, a family
member) invited by a single-use, expiring link, with no portal account.

- The visit's provider makes an invite with a label ("Interpreter"). The link
  carries a random token shown once; only its hash is stored. It may be
  redeemed until ``visit_invite_ttl_minutes`` after it was made, once.
- Redeeming it (one conditional UPDATE ``WHERE used_at IS NULL``, so two
  browsers with the same link get in once) makes a guest account (role
  ``guest``, status ``disabled``: it can never sign in), a participant row in
  the visit's waiting room labelled with the invite's label, and a guest
  session: a second random token for the ``rtc_guest`` cookie, also stored as
  a hash on the invite. The provider admits the guest like anyone waiting.
- The guest session is not an ``auth_session``: every route and socket that
  takes the portal's session cookie sees no session at all, so a guest is
  refused by everything but the visit routes that accept it
  (``rooms.routes``: the visit, its place, leave, ICE servers, chat, and
  ``/ws/v1/visit``). It ends when the visit ends, when the guest leaves, when
  the provider removes them (``remove_guest``) or revokes their link
  (``revoke``), or after ``GUEST_SESSION``; the guest's socket closes then
  too (``signaling.guests``).
- The provider lists the visit's invitations (``list_invites``, never the
  link) and may revoke one: an unused link then refuses (409
  ``invite_revoked``) and holds no place.
- Redeeming is throttled per address (``REDEEM_TRIES`` per
  ``REDEEM_WINDOW_SECONDS``, then 429, and nothing is audited), so wrong
  tokens cannot flood the audit table. A browser signed in to the portal is
  refused (409 ``signed_in``) before the link is used up: its portal session
  would take precedence over the guest cookie and find no visit.
- A guest sees nothing of the record (``rooms.access``, ``service._visit_out``).
- At most ``MAX_PARTICIPANTS`` people take part: patient, provider and two
  guests, counting invites not yet used or expired.
- Refusals (unknown, used or expired link; a full or ended visit) are audited
  as ``visit.invite_redeem`` ``denied``; a used or expired link says so.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import throttle
from rtc_server.auth.actor import Actor, RequestMeta
from rtc_server.auth.models import Role, SessionStage, User, UserStatus
from rtc_server.auth.tokens import new_token, token_hash
from rtc_server.config import Settings
from rtc_server.db import as_utc
from rtc_server.errors import Conflict, DomainError, NotFound
from rtc_server.notify.mail import Mail, compose
from rtc_server.notify.outbox import queue_mail
from rtc_server.rooms import events
from rtc_server.rooms.models import (
    MAX_PARTICIPANTS,
    Participant,
    ParticipantRole,
    ParticipantState,
    Visit,
    VisitInvite,
    VisitStatus,
)
from rtc_server.rooms.service import hosted
from rtc_server.rooms.shapes import InviteOut, InvitesOut, InviteStateOut, ParticipantOut

#: A guest session lasts at most this long; the visit ending ends it sooner.
GUEST_SESSION = timedelta(hours=8)
NO_PASSWORD = "!"  # noqa: S105 (the opposite of a password: nothing verifies against it)
#: Guests in one visit at most (the patient and the provider take two of the four places).
MAX_GUESTS = MAX_PARTICIPANTS - 2
#: Redeem attempts per address per window (a wrong token is audited; a flood is not).
REDEEM_TRIES = 10
REDEEM_WINDOW_SECONDS = 15 * 60

_I = VisitInvite.__table__.c  # type: ignore[attr-defined]


def guest_cookie_name(settings: Settings) -> str:
    return "__Host-rtc_guest" if settings.secure_cookies else "rtc_guest"


def invite_url(settings: Settings, token: str) -> str:
    """The link: the token rides in the fragment, so it is never in a request line,
    a server log or a Referer header; the join page posts it."""
    return f"{settings.base_url.rstrip('/')}/join.html#{token}"


async def _guests_taking_places(db: AsyncSession, visit_id: int, now: datetime) -> int:
    guests = (await db.exec(select(func.count()).select_from(Participant).where(
        Participant.visit_id == visit_id, Participant.role == ParticipantRole.guest,
        Participant.state != ParticipantState.left))).one()
    pending = (await db.exec(select(func.count()).select_from(VisitInvite).where(
        VisitInvite.visit_id == visit_id, col(VisitInvite.used_at).is_(None),
        col(VisitInvite.revoked_at).is_(None), col(VisitInvite.expires_at) > now))).one()
    return int(guests) + int(pending)


async def create_invite(db: AsyncSession, actor: Actor, visit_id: int, *, label: str,
                        email: str | None, settings: Settings, now: datetime) -> InviteOut:
    """The visit's provider invites a guest; the answer carries the link (once).
    With ``email``, the link is also mailed there (the mail names no health data:
    not the patient, not the reason)."""
    visit = await hosted(db, actor, visit_id, "visit.invite")
    if visit.status == VisitStatus.ended:
        raise Conflict("This visit has ended.", code="visit_ended")
    if await _guests_taking_places(db, visit.id or 0, now) >= MAX_GUESTS:
        raise Conflict(f"A video visit has room for {MAX_PARTICIPANTS} people, and every "
                       "place is taken or promised to an unused invitation.", code="visit_full")
    token = new_token()
    invite = VisitInvite(visit_id=visit.id or 0, token_hash=token_hash(token), label=label,
                         created_by=actor.user_id, created_at=now,
                         expires_at=now + timedelta(minutes=settings.visit_invite_ttl_minutes))
    db.add(invite)
    await db.flush()
    url = invite_url(settings, token)
    if email:
        queue_mail(db, _invite_mail(email, url, settings))
    await audit.record(
        db, action="visit.invite", outcome="success", actor_id=actor.user_id,
        actor_role=str(actor.role), patient_id=visit.patient_id, resource=f"visit:{visit.id}",
        request_id=actor.meta.request_id, ip=actor.meta.ip,
    )
    await db.commit()
    return InviteOut(id=invite.id or 0, label=label, url=url, expires_at=invite.expires_at or now,
                     emailed=bool(email))


def _invite_mail(to: str, url: str, settings: Settings) -> Mail:
    clinic = settings.clinic_name
    minutes = settings.visit_invite_ttl_minutes
    return compose(
        "visit_invite", to, f"{clinic}: you are invited to join a video visit", clinic, None,
        [
            "A provider at the clinic invited you to join a video visit. Open the link in "
            "Chrome, Edge, Firefox or Safari; nothing needs installing.",
            f"The link works once, for {minutes} minutes. If it has expired, ask the clinic "
            "for a new one.",
        ],
        ("Join the video visit", url),
    )


@dataclass(frozen=True)
class Redeemed:
    """A redeemed link: the guest session token (for the cookie, never stored) and the visit."""

    session_token: str
    visit_id: int
    expires_at: datetime


class InviteRefused(Conflict):
    pass


_REFUSALS = {
    "invite_used": "This invitation link has already been used. Each link works once: "
                   "ask the clinic for a new one.",
    "invite_expired": "This invitation link has expired. Ask the clinic for a new one.",
    "invite_revoked": "This invitation link was withdrawn by the clinic.",
    "signed_in": "This browser is signed in to the patient portal. To join as a guest, sign out "
                 "of the portal first, or open the link in a private window. The link has not "
                 "been used.",
    "visit_ended": "This video visit has ended.",
    "visit_full": "This video visit is full.",
}


async def _refuse(db: AsyncSession, meta: RequestMeta, invite_id: int | None,
                  patient_id: int | None, error: DomainError) -> DomainError:
    await db.rollback()
    await audit.record(
        db, action="visit.invite_redeem", outcome="denied", actor_id=None, actor_role=None,
        patient_id=patient_id, resource=f"visit_invite:{invite_id}" if invite_id else None,
        request_id=meta.request_id, ip=meta.ip,
    )
    await db.commit()
    return error


async def redeem(db: AsyncSession, token: str, meta: RequestMeta, *, now: datetime,
                 secret: bytes | str, signed_in: bool = False) -> Redeemed:
    """Exchange a link's token, once, for a guest session in the visit's waiting room.
    ``signed_in``: the request carries a live portal session (refused, link kept)."""
    key = throttle.key_for("visit-redeem:ip", meta.ip or "-", secret)
    await throttle.hit(throttle.engine_of(db), key, limit=REDEEM_TRIES,
                       window_seconds=REDEEM_WINDOW_SECONDS)
    invite = (await db.exec(select(VisitInvite).where(
        VisitInvite.token_hash == token_hash(token)))).first() if len(token) <= 128 else None
    if invite is None:
        raise await _refuse(db, meta, None, None, NotFound(
            "This invitation link is not valid. Check that the whole link was copied."))
    visit = await db.get(Visit, invite.visit_id)
    assert visit is not None

    invite_id, patient_id = invite.id, visit.patient_id  # plain values: a rollback expires rows

    async def refuse(code: str) -> DomainError:
        return await _refuse(db, meta, invite_id, patient_id, InviteRefused(_REFUSALS[code], code=code))

    if signed_in:
        raise await refuse("signed_in")
    if invite.revoked_at is not None:
        raise await refuse("invite_revoked")
    if invite.used_at is not None:
        raise await refuse("invite_used")
    expires = as_utc(invite.expires_at)
    if expires is None or now >= expires:
        raise await refuse("invite_expired")
    if visit.status == VisitStatus.ended:
        raise await refuse("visit_ended")
    # The invite itself holds one of the guest places until now: count the others.
    if await _guests_taking_places(db, visit.id or 0, now) > MAX_GUESTS:
        raise await refuse("visit_full")
    done = await db.exec(update(VisitInvite.__table__).where(  # type: ignore[call-overload]
        _I.id == invite.id, _I.used_at.is_(None)).values(used_at=now))
    if done.rowcount != 1:  # another browser redeemed it a moment ago
        raise await refuse("invite_used")
    name = f"guest-{secrets.token_hex(8)}"
    # "!" is no argon2 hash: no password ever matches it (and the account is disabled).
    user = User(username=name, username_norm=name, password_hash=NO_PASSWORD, role=Role.guest,
                status=UserStatus.disabled, display_name=invite.label, created_at=now)
    db.add(user)
    await db.flush()
    row = Participant(visit_id=visit.id or 0, user_id=user.id or 0, role=ParticipantRole.guest,
                      state=ParticipantState.waiting, checked_in_at=now, label=invite.label)
    db.add(row)
    session = new_token()
    session_expires = now + GUEST_SESSION
    await db.exec(update(VisitInvite.__table__).where(_I.id == invite.id).values(  # type: ignore[call-overload]
        user_id=user.id, session_hash=token_hash(session), session_expires_at=session_expires))
    await db.flush()
    events.participant_changed(db, visit_id=visit.id or 0, practitioner_id=visit.practitioner_id,
                               participant_id=row.id or 0, state=row.state)
    await audit.record(
        db, action="visit.invite_redeem", outcome="success", actor_id=user.id,
        actor_role=str(Role.guest), patient_id=visit.patient_id, resource=f"visit:{visit.id}",
        request_id=meta.request_id, ip=meta.ip,
    )
    await db.commit()
    await throttle.refund(throttle.engine_of(db), key)
    return Redeemed(session, visit.id or 0, session_expires)


@dataclass(frozen=True)
class GuestSession:
    actor: Actor
    visit_id: int


async def guest_actor(db: AsyncSession, token: str | None, meta: RequestMeta,
                      now: datetime) -> Actor | None:
    """The guest behind a ``rtc_guest`` cookie, while their session lasts, the
    visit is open, they have not left or been removed, and their link stands;
    None otherwise."""
    found = await guest_session(db, token, meta, now)
    return found.actor if found is not None else None


async def guest_session(db: AsyncSession, token: str | None, meta: RequestMeta,
                        now: datetime) -> GuestSession | None:
    """``guest_actor`` and the visit their session is for."""
    if not token or len(token) > 128:
        return None
    row = (await db.exec(
        _live_guests().where(VisitInvite.session_hash == token_hash(token))
        .add_columns(User.username, VisitInvite.visit_id)
    )).first()
    if row is None:
        return None
    invite_id, user_id, expires, username, visit_id = row
    expires = as_utc(expires)
    if expires is None or now >= expires:
        return None
    return GuestSession(Actor(user_id=user_id, username=username, role=Role.guest, patient_id=None,
                              session_id=session_id_of(invite_id), stage=SessionStage.full,
                              meta=meta), visit_id)


def session_id_of(invite_id: int | None) -> str:
    """How a guest session is named to the real-time layer (``Actor.session_id``)."""
    return f"guest:{invite_id}"


def _live_guests() -> Any:
    """Guest sessions that still stand, expiry aside: (invite id, user id, session expiry)."""
    return (
        select(VisitInvite.id, VisitInvite.user_id, VisitInvite.session_expires_at)
        .join(Visit, col(Visit.id) == col(VisitInvite.visit_id))
        .join(User, col(User.id) == col(VisitInvite.user_id))
        .join(Participant, (col(Participant.visit_id) == col(VisitInvite.visit_id))
              & (col(Participant.user_id) == col(VisitInvite.user_id)))
        .where(Visit.status == VisitStatus.open, User.role == Role.guest,
               col(VisitInvite.revoked_at).is_(None), Participant.state != ParticipantState.left)
    )


async def live_sessions(db: AsyncSession, session_ids: list[str], now: datetime) -> set[str]:
    """Which of these guest session ids (``session_id_of``) still stand: one query
    (the guest sockets' sweeper, ``signaling.guests``)."""
    ids = [int(s[6:]) for s in session_ids if s.startswith("guest:") and s[6:].isdigit()]
    if not ids:
        return set()
    rows = (await db.exec(_live_guests().where(col(VisitInvite.id).in_(ids)))).all()
    return {session_id_of(invite_id) for invite_id, _, expires in rows
            if (at := as_utc(expires)) is not None and now < at}


# --- the provider's side ------------------------------------------------------------------

def _state(invite: VisitInvite, now: datetime) -> str:
    if invite.revoked_at is not None:
        return "revoked"
    if invite.used_at is not None:
        return "used"
    expires = as_utc(invite.expires_at)
    return "expired" if expires is None or now >= expires else "pending"


async def _invite_out(db: AsyncSession, invites: list[VisitInvite], now: datetime) -> list[InviteStateOut]:
    users = [i.user_id for i in invites if i.user_id is not None]
    rows = {user_id: pid for pid, user_id in (await db.exec(
        select(Participant.id, Participant.user_id).where(col(Participant.user_id).in_(users))
    )).all()} if users else {}
    return [InviteStateOut(id=i.id or 0, label=i.label, state=_state(i, now),
                           created_at=i.created_at or now, expires_at=i.expires_at or now,
                           used_at=i.used_at, participant_id=rows.get(i.user_id or 0))
            for i in invites]


async def list_invites(db: AsyncSession, actor: Actor, visit_id: int, now: datetime) -> InvitesOut:
    """The visit's invitations, oldest first (its provider; never the link)."""
    visit = await hosted(db, actor, visit_id, "visit.invite_list")
    invites = list((await db.exec(select(VisitInvite).where(VisitInvite.visit_id == visit.id)
                                  .order_by(col(VisitInvite.id)))).all())
    out = await _invite_out(db, invites, now)
    await _audit(db, actor, "visit.invite_list", visit, f"visit:{visit.id}")
    await db.commit()
    return InvitesOut(invites=out)


async def _end_guest(db: AsyncSession, visit: Visit, row: Participant, now: datetime) -> None:
    """The guest of ``row`` leaves the visit, and their session ends (the relay
    says ``bye``; their sockets close at the sweeper's next look, told by the event)."""
    await db.exec(update(VisitInvite.__table__).where(  # type: ignore[call-overload]
        _I.visit_id == visit.id, _I.user_id == row.user_id, _I.revoked_at.is_(None),
    ).values(revoked_at=now, session_expires_at=now))
    if row.state != ParticipantState.left:
        row.state = ParticipantState.left
        row.left_at = now
        row.peer_id = None
        await db.flush()
        events.participant_changed(db, visit_id=visit.id or 0, practitioner_id=visit.practitioner_id,
                                   participant_id=row.id or 0, state=ParticipantState.left)


async def revoke(db: AsyncSession, actor: Actor, invite_id: int, now: datetime) -> InviteStateOut:
    """Withdraw an invitation (its visit's provider; idempotent). An unused link
    then refuses and holds no place; a used one's guest is removed from the visit."""
    invite = await db.get(VisitInvite, invite_id)
    actor.require(invite is not None, action="visit.invite_revoke",
                  resource=f"visit_invite:{invite_id}", error=NotFound())
    assert invite is not None
    visit = await hosted(db, actor, invite.visit_id, "visit.invite_revoke")
    if invite.revoked_at is None:
        invite.revoked_at = now
        if invite.session_expires_at is not None:
            invite.session_expires_at = now
        await db.flush()
        row = (await db.exec(select(Participant).where(
            Participant.visit_id == visit.id, Participant.user_id == invite.user_id))).first() \
            if invite.user_id is not None else None
        if row is not None:
            await _end_guest(db, visit, row, now)
        await _audit(db, actor, "visit.invite_revoke", visit, f"visit_invite:{invite_id}")
    [out] = await _invite_out(db, [invite], now)
    await db.commit()
    return out


async def remove_guest(db: AsyncSession, actor: Actor, visit_id: int, participant_id: int,
                       now: datetime) -> ParticipantOut:
    """Remove a guest from the visit, waiting or admitted (its provider; idempotent):
    they leave the call, their session ends and their link cannot bring them back.
    The patient is not removed this way (409 ``not_a_guest``): the provider ends the visit."""
    visit = await hosted(db, actor, visit_id, "visit.remove")
    row = await db.get(Participant, participant_id)
    if row is None or row.visit_id != visit.id:
        raise NotFound()
    if row.role != ParticipantRole.guest:
        raise Conflict("Only a guest can be removed from a visit.", code="not_a_guest")
    if row.state != ParticipantState.left:
        await _end_guest(db, visit, row, now)
        await _audit(db, actor, "visit.remove", visit, f"visit_participant:{participant_id}")
    out = ParticipantOut(id=row.id or 0, role=row.role, state=row.state, name=row.label or "Guest")
    await db.commit()
    return out


async def _audit(db: AsyncSession, actor: Actor, action: str, visit: Visit, resource: str) -> None:
    await audit.record(
        db, action=action, outcome="success", actor_id=actor.user_id, actor_role=str(actor.role),
        patient_id=visit.patient_id, resource=resource,
        request_id=actor.meta.request_id, ip=actor.meta.ip,
    )
