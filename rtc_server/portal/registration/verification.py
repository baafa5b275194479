"""The staff identity-verification queue: sign-ups whose record could not
confirm the patient by itself (no email or no zip on file) wait here for a
person to check the patient's identity.

Guarantees:

- Only staff and admins see the queue (it shows the record's MRN, date of
  birth and phone beside what the applicant typed) and decide; every record
  shown is audited as a read of that patient's details.
- Of two people deciding one registration at once exactly one wins; the
  other gets 409 (``already_decided``).
- Approval mails the activation link to the email the applicant entered; on
  the activation page they choose their username and password, as everyone
  does. Rejection disables the account and frees the record. The applicant is
  not mailed on rejection: that would confirm to whoever typed the details
  that the record exists (see ``service``); the sign-up copy tells them to
  call the clinic when they hear nothing.
- Anyone else who asks (patients, providers) gets 403, and the refusal is
  audited as ``denied`` with the action they tried.
- Undo after Approve is the page's: it holds the approval for a few seconds
  before sending it, so Undo really means nothing happened (no link exists
  that would have to be chased and voided).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import emailed_tokens
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import Registration, RegistrationStatus, Role, TokenPurpose, User, UserStatus
from rtc_server.config import Settings
from rtc_server.db import utcnow
from rtc_server.errors import Conflict, InvalidInput, NotFound
from rtc_server.notify.mail import link
from rtc_server.notify.outbox import queue_mail
from rtc_server.portal.registration import mail
from rtc_server.records.models import Patient


@dataclass(frozen=True)
class Verification:
    registration: Registration
    patient: Patient


def _require_staff(actor: Actor, action: str, registration_id: int | None = None) -> None:
    """Staff and admins only; anyone else gets Forbidden, audited as ``denied``
    (``Actor.require_role``: the route writes the row)."""
    resource = f"registration:{registration_id}" if registration_id else "registration:queue"
    actor.require_role(Role.staff, Role.admin, action=action, resource=resource)


async def list_verifications(db: AsyncSession, *, actor: Actor) -> list[Verification]:
    """Registrations waiting for a person to confirm the patient's identity,
    oldest first. Staff and admins only (Forbidden for anyone else, providers
    included); each record shown is audited as a read of that patient's details."""
    _require_staff(actor, "registration.verification.view")
    rows = (
        await db.exec(
            select(Registration, Patient)
            .join(Patient, col(Patient.id) == col(Registration.patient_id))
            .where(Registration.status == RegistrationStatus.awaiting_verification)
            .order_by(col(Registration.created_at), col(Registration.id))
            .limit(500)
        )
    ).all()
    for reg, patient in rows:
        await audit.record(db, action="registration.verification.view", outcome="success",
                           actor_id=actor.user_id, actor_role=actor.role, patient_id=patient.id,
                           resource=f"registration:{reg.id}", request_id=actor.meta.request_id,
                           ip=actor.meta.ip)
    await db.commit()
    return [Verification(reg, patient) for reg, patient in rows]


async def _decide(
    db: AsyncSession, *, actor: Actor, registration_id: int, status: RegistrationStatus,
    note: str | None,
) -> tuple[Registration, User]:
    """Move a waiting registration to ``status``. The UPDATE is conditional, so of
    two people deciding at once exactly one wins; the other gets 409."""
    reg = await db.get(Registration, registration_id)
    if reg is None:
        raise NotFound("No such registration.")
    result = await db.exec(  # type: ignore[call-overload]
        update(Registration)
        .where(col(Registration.id) == registration_id,
               col(Registration.status) == RegistrationStatus.awaiting_verification)
        .values(status=status, decided_at=utcnow(), decided_by=actor.user_id,
                decision_note=(note or "").strip()[:500] or None)
    )
    if result.rowcount != 1:
        raise Conflict("This registration was already decided.", code="already_decided")
    await db.refresh(reg)
    user = await db.get(User, reg.user_id)
    if user is None:
        raise NotFound("No such registration.")
    return reg, user


async def approve(
    db: AsyncSession, *, actor: Actor, registration_id: int, note: str | None, settings: Settings
) -> None:
    """Staff confirmed the patient's identity: mail the activation link to the
    email the patient entered, which becomes the account's address."""
    _require_staff(actor, "registration.approve", registration_id)
    reg, user = await _decide(db, actor=actor, registration_id=registration_id,
                              status=RegistrationStatus.approved, note=note)
    email = str(reg.entered.get("email") or "")
    if not email:
        raise Conflict("This registration has no email address to send the link to.")
    assert user.id is not None
    user.email = email
    db.add(user)
    token = await emailed_tokens.issue(db, user_id=user.id, purpose=TokenPurpose.activation,
                                       email=email)
    await audit.record(db, action="registration.approve", outcome="success", actor_id=actor.user_id,
                       actor_role=actor.role, patient_id=reg.patient_id,
                       resource=f"registration:{reg.id}", request_id=actor.meta.request_id,
                       ip=actor.meta.ip)
    queue_mail(db, mail.activation(
        to=email, name=str(reg.entered.get("first_name") or "") or None,
        clinic=settings.clinic_name, url=link(settings.base_url, "activate.html", token),
    ))
    await db.commit()


async def reject(db: AsyncSession, *, actor: Actor, registration_id: int, reason: str) -> None:
    """Staff could not confirm the identity. The registration is kept as rejected;
    its account is disabled and let go of the record and the username, so the
    record can be registered again, correctly."""
    _require_staff(actor, "registration.reject", registration_id)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason", "Say why the registration is rejected.")
    reg, user = await _decide(db, actor=actor, registration_id=registration_id,
                              status=RegistrationStatus.rejected, note=reason)
    user.status, user.patient_id, user.email = UserStatus.disabled, None, None
    user.username_norm = f"~rejected~{user.id}"  # '~' is not allowed in usernames
    user.password_hash, user.security_answer_hash = "!", None  # unusable on purpose
    db.add(user)
    await audit.record(db, action="registration.reject", outcome="success", actor_id=actor.user_id,
                       actor_role=actor.role, patient_id=reg.patient_id,
                       resource=f"registration:{reg.id}", request_id=actor.meta.request_id,
                       ip=actor.meta.ip)
    await db.commit()
