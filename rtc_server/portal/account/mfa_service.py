"""Two-factor set-up from Account Settings and from the first-login enrolment.

Starting set-up from a full session needs the current password: whoever turns
two-factor on controls the next sign-ins, so a hijacked session must not be
able to do it. An enrolment session (``mfa_enroll``, opened by the password a
moment ago) needs none. Turning two-factor on ends every other session of
the account (their sockets close at once); turning it off needs the
password and a code, and is for patients only. Each change mails a notice
(queued in the outbox).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import login, mfa
from rtc_server.auth.actor import Actor
from rtc_server.auth.models import SessionStage
from rtc_server.auth.sessions import create_session, end_user_sessions
from rtc_server.config import Settings
from rtc_server.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from rtc_server.portal.account.notices import queue_security_notice
from rtc_server.portal.account.service import load_user, record_action, require_password


class MfaSetupOut(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True)
class MfaConfirmed:
    recovery_codes: list[str]
    #: Set when an enrolment session became a full one: the route sets the cookie.
    new_session_token: str | None = None


def _require_setup_stage(actor: Actor) -> None:
    if actor.stage not in (SessionStage.full, SessionStage.mfa_enroll):
        raise Unauthorized()


async def mfa_setup(
    db: AsyncSession, actor: Actor, settings: Settings, *, current_password: str | None
) -> MfaSetupOut:
    """A new pending secret (replacing any earlier pending one); it takes effect
    only when a code from it is confirmed. A full session must give
    ``current_password`` (422 on that field when missing or wrong)."""
    _require_setup_stage(actor)
    user = await load_user(db, actor)
    if user.mfa_enabled:
        raise Conflict("Two-factor authentication is already on.", code="mfa_already_enabled")
    if actor.stage == SessionStage.full:
        await require_password(db, actor, user, current_password, settings)
    secret = mfa.new_secret()
    user.mfa_secret = mfa.encrypt_secret(settings.secret, user.id or 0, secret)
    db.add(user)
    await record_action(db, actor, "mfa.setup")
    await db.commit()
    uri, svg = mfa.provisioning(secret, user.username, settings.clinic_name)
    return MfaSetupOut(secret=secret, otpauth_uri=uri, qr_svg=svg)


async def mfa_confirm(
    db: AsyncSession, actor: Actor, *, code: str, settings: Settings
) -> MfaConfirmed:
    """Turn two-factor on with a code from the pending secret; returns ten
    recovery codes (shown once). Every other session of the account ends; an
    enrolment session is replaced by a new full one."""
    _require_setup_stage(actor)
    user = await load_user(db, actor)
    if user.mfa_enabled:
        raise Conflict("Two-factor authentication is already on.", code="mfa_already_enabled")
    if not user.mfa_secret:
        raise Conflict("Start the set-up first.", code="mfa_setup_required")
    try:
        secret = mfa.decrypt_secret(settings.secret, user.id or 0, user.mfa_secret)
    except mfa.MfaSecretError:
        raise Conflict("Start the set-up again.", code="mfa_setup_required") from None
    if not await mfa.verify_totp(db, user.id or 0, secret, code.strip()):
        await login.refuse_signed_in(db, user=user, meta=actor.meta, settings=settings,
                                     action="mfa.enable")
        raise InvalidInput("code", "That code is not right. Enter the code your app shows now.")
    user.mfa_enabled = True
    db.add(user)
    codes = await mfa.replace_recovery_codes(db, user.id or 0)
    new_token = None
    if actor.stage == SessionStage.mfa_enroll:
        await end_user_sessions(db, user.id or 0)
        new_token = await create_session(db, user, SessionStage.full, actor.meta, settings)
        await audit.record(
            db, action="login.success", actor_id=user.id, actor_role=user.role,
            resource=f"user:{user.id}", request_id=actor.meta.request_id, ip=actor.meta.ip,
        )
    else:
        await end_user_sessions(db, user.id or 0, keep=actor.session_id)
    await record_action(db, actor, "mfa.enable")
    queue_security_notice(
        db, user=user, settings=settings, kind="mfa_enabled", subject="two-factor authentication is on",
        what="Two-factor authentication was turned on for your patient portal account, and any "
             "other signed-in sessions were signed out.",
    )
    await db.commit()
    return MfaConfirmed(recovery_codes=codes, new_session_token=new_token)


async def mfa_disable(
    db: AsyncSession, actor: Actor, *, current_password: str, code: str, settings: Settings,
) -> None:
    """Patients only (for other roles two-factor is required; the refusal is audited)."""
    user = await load_user(db, actor)
    actor.require(not mfa.mfa_required_for(user.role), action="mfa.disable",
                  resource=f"user:{actor.user_id}",
                  error=Forbidden("Your role requires two-factor authentication.",
                                  code="mfa_required_for_role"))
    if not user.mfa_enabled:
        raise Conflict("Two-factor authentication is already off.", code="mfa_not_enabled")
    await require_password(db, actor, user, current_password, settings)
    if await mfa.check_code(db, user, code, settings.secret) is None:
        await login.refuse_signed_in(db, user=user, meta=actor.meta, settings=settings,
                                     action="mfa.disable")
        raise InvalidInput("code", "That code is not right.")
    user.mfa_enabled = False
    user.mfa_secret = None
    db.add(user)
    await mfa.delete_recovery_codes(db, user.id or 0)
    await mfa.forget_steps(db, user.id or 0)
    await record_action(db, actor, "mfa.disable")
    queue_security_notice(
        db, user=user, settings=settings, kind="mfa_disabled", subject="two-factor authentication is off",
        what="Two-factor authentication was turned off for your patient portal account.",
    )
    await db.commit()
