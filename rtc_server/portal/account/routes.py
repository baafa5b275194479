"""Account Settings endpoints (``/account/*``); the rules live in ``service``,
``email_change`` and ``mfa_service``. Mails the services return go out after
the response (``with_mail``)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import api_route, json_response, no_content, read_body
from rtc_server.auth.current import require_actor
from rtc_server.auth.sessions import set_session_cookie
from rtc_server.context import db, mailer, meta, settings
from rtc_server.notify.live import announce_session_change
from rtc_server.notify.mail import with_mail
from rtc_server.portal.account import email_change, mfa_service, service
from rtc_server.portal.account.mfa_service import MfaConfirmed, MfaSetupOut
from rtc_server.portal.account.service import (
    AccountOut,
    ContactChange,
    NotificationPrefs,
    SessionOut,
)


class UsernameChange(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    current_password: str = Field(min_length=1, max_length=1024)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    # The policy's own length rules give the field message; this only bounds work.
    new_password: str = Field(min_length=1, max_length=1024)


class SecurityQuestionChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    security_question: str = Field(min_length=1, max_length=300)
    security_answer: str = Field(min_length=1, max_length=300)


class EmailConfirm(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class StatusOut(BaseModel):
    status: str


class MfaSetupIn(BaseModel):
    #: Required from a full session; not asked in the first-login enrolment.
    current_password: str | None = Field(default=None, max_length=1024)


class MfaCodeIn(BaseModel):
    code: str = Field(min_length=1, max_length=64)


class MfaDisable(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    code: str = Field(min_length=1, max_length=64)


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


async def get_account(request: Request) -> Response:
    """The signed-in user's settings (never a hash or an answer)."""
    actor = await require_actor(request)
    async with db(request) as session:
        return json_response(await service.get_account(session, actor))


async def update_contact(request: Request) -> Response:
    """Phone and address now; a new email after its confirmation link."""
    actor = await require_actor(request)
    body = await read_body(request, ContactChange)
    async with db(request) as session:
        out, mails = await email_change.update_contact(
            session, actor, body, settings=settings(request), mailer=mailer(request)
        )
    return with_mail(json_response(out), request, mails)


async def confirm_email(request: Request) -> Response:
    """Follow the link mailed to a new address (works with or without a session)."""
    body = await read_body(request, EmailConfirm)
    m = meta(request)
    async with db(request) as session:
        await email_change.confirm_email(session, token=body.token, request_id=m.request_id, ip=m.ip)
    return json_response(StatusOut(status="email_confirmed"))


async def change_username(request: Request) -> Response:
    """A new username (needs the current password)."""
    actor = await require_actor(request)
    body = await read_body(request, UsernameChange)
    async with db(request) as session:
        out, mails = await service.change_username(
            session, actor, username=body.username, current_password=body.current_password,
            settings=settings(request), mailer=mailer(request),
        )
    return with_mail(json_response(out), request, mails)


async def change_password(request: Request) -> Response:
    """A new password (needs the current one); other sessions end."""
    actor = await require_actor(request)
    body = await read_body(request, PasswordChange)
    async with db(request) as session:
        mails = await service.change_password(
            session, actor, current_password=body.current_password, new_password=body.new_password,
            settings=settings(request), mailer=mailer(request),
        )
    return with_mail(json_response(StatusOut(status="password_changed")), request, mails)


async def change_security_question(request: Request) -> Response:
    """A new security question and answer (the answer is stored hashed)."""
    actor = await require_actor(request)
    body = await read_body(request, SecurityQuestionChange)
    async with db(request) as session:
        out, mails = await service.set_security_question(
            session, actor, current_password=body.current_password,
            question=body.security_question, answer=body.security_answer,
            settings=settings(request), mailer=mailer(request),
        )
    return with_mail(json_response(out), request, mails)


async def set_notifications(request: Request) -> Response:
    """Email and text-message choices per kind of notification."""
    actor = await require_actor(request)
    body = await read_body(request, NotificationPrefs)
    async with db(request) as session:
        return json_response(await service.set_notifications(session, actor, body))


async def list_sessions(request: Request) -> Response:
    """The account's live sessions; ``current`` marks this one."""
    actor = await require_actor(request)
    async with db(request) as session:
        rows = await service.list_sessions(session, actor, settings(request))
    return json_response([r.model_dump(mode="json") for r in rows])


async def end_session(request: Request) -> Response:
    """End one of your sessions (404 if it is not yours)."""
    actor = await require_actor(request)
    public_id = str(request.path_params["id"])[:64]
    async with db(request) as session:
        await service.end_own_session(session, actor, public_id)
    await announce_session_change(request, actor.user_id)
    return no_content()


async def mfa_setup(request: Request) -> Response:
    """Start two-factor set-up: a new secret as text, URI and QR code (a full
    session must give the current password)."""
    actor = await require_actor(request, allow_partial=True)
    body = await read_body(request, MfaSetupIn)
    async with db(request) as session:
        out = await mfa_service.mfa_setup(
            session, actor, settings(request), current_password=body.current_password,
            mailer=mailer(request),
        )
    return json_response(out)


async def mfa_confirm(request: Request) -> Response:
    """Turn two-factor on with a code; returns recovery codes once."""
    actor = await require_actor(request, allow_partial=True)
    body = await read_body(request, MfaCodeIn)
    async with db(request) as session:
        result: MfaConfirmed = await mfa_service.mfa_confirm(
            session, actor, code=body.code, settings=settings(request), mailer=mailer(request)
        )
    response = json_response(RecoveryCodesOut(recovery_codes=result.recovery_codes))
    if result.new_session_token:
        set_session_cookie(response, result.new_session_token, settings(request))
    return with_mail(response, request, result.mails)


async def mfa_disable(request: Request) -> Response:
    """Turn two-factor off (patients only; needs the password and a code)."""
    actor = await require_actor(request)
    body = await read_body(request, MfaDisable)
    async with db(request) as session:
        mails = await mfa_service.mfa_disable(
            session, actor, current_password=body.current_password, code=body.code,
            settings=settings(request), mailer=mailer(request),
        )
    return with_mail(no_content(), request, mails)


_T = "account"

routes: list[BaseRoute] = [
    api_route("/account", get_account, methods=["GET"], response=AccountOut, tag=_T),
    api_route("/account/contact", update_contact, methods=["PATCH"], body=ContactChange,
              response=AccountOut, tag=_T),
    api_route("/account/email/confirm", confirm_email, methods=["POST"], body=EmailConfirm,
              response=StatusOut, tag=_T, auth="public"),
    api_route("/account/username", change_username, methods=["POST"], body=UsernameChange,
              response=AccountOut, tag=_T),
    api_route("/account/password", change_password, methods=["POST"], body=PasswordChange,
              response=StatusOut, tag=_T),
    api_route("/account/security-question", change_security_question, methods=["POST"],
              body=SecurityQuestionChange, response=AccountOut, tag=_T),
    api_route("/account/notifications", set_notifications, methods=["PUT"], body=NotificationPrefs,
              response=AccountOut, tag=_T),
    api_route("/account/sessions", list_sessions, methods=["GET"], response=SessionOut,
              response_list=True, tag=_T),
    api_route("/account/sessions/{id}", end_session, methods=["DELETE"], status_code=204, tag=_T),
    api_route("/account/mfa/setup", mfa_setup, methods=["POST"], body=MfaSetupIn,
              response=MfaSetupOut, tag=_T),
    api_route("/account/mfa/confirm", mfa_confirm, methods=["POST"], body=MfaCodeIn,
              response=RecoveryCodesOut, tag=_T),
    api_route("/account/mfa/disable", mfa_disable, methods=["POST"], body=MfaDisable,
              status_code=204, tag=_T),
]
