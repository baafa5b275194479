"""Account Settings endpoints (``/account/*``); the rules live in ``service``,
``email_change`` and ``mfa_service``, which also queue the mail they send."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response, no_content
from rtc_server.auth.cookies import set_session_cookie
from rtc_server.auth.routes import MfaCodeIn
from rtc_server.portal.account import email_change, mfa_service, service
from rtc_server.portal.account.mfa_service import MfaConfirmed, MfaSetupOut
from rtc_server.portal.account.service import (
    AccountOut,
    ContactChange,
    NotificationPrefs,
    SessionRow,
    TimeZoneChoice,
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


class MfaDisable(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    code: str = Field(min_length=1, max_length=64)


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


async def get_account(call: Call) -> Response:
    """The signed-in user's settings (never a hash or an answer)."""
    return json_response(await service.get_account(call.db, call.actor))


async def update_contact(call: Call) -> Response:
    """Phone and address now; a new email after its confirmation link."""
    return json_response(
        await email_change.update_contact(call.db, call.actor, call.body, settings=call.settings)
    )


async def confirm_email(call: Call) -> Response:
    """Follow the link mailed to a new address (works with or without a session)."""
    await email_change.confirm_email(call.db, token=call.body.token, meta=call.meta)
    return json_response(StatusOut(status="email_confirmed"))


async def change_username(call: Call) -> Response:
    """A new username (needs the current password)."""
    return json_response(await service.change_username(
        call.db, call.actor, username=call.body.username,
        current_password=call.body.current_password, settings=call.settings,
    ))


async def change_password(call: Call) -> Response:
    """A new password (needs the current one); other sessions end."""
    await service.change_password(
        call.db, call.actor, current_password=call.body.current_password,
        new_password=call.body.new_password, settings=call.settings,
    )
    return json_response(StatusOut(status="password_changed"))


async def change_security_question(call: Call) -> Response:
    """A new security question and answer (the answer is stored hashed)."""
    return json_response(await service.set_security_question(
        call.db, call.actor, current_password=call.body.current_password,
        question=call.body.security_question, answer=call.body.security_answer,
        settings=call.settings,
    ))


async def set_notifications(call: Call) -> Response:
    """Email and text-message choices per kind of notification."""
    return json_response(await service.set_notifications(call.db, call.actor, call.body))


async def set_time_zone(call: Call) -> Response:
    """The time zone times are shown in; null follows the device."""
    return json_response(await service.set_time_zone(call.db, call.actor, call.body))


async def list_sessions(call: Call) -> Response:
    """The account's live sessions; ``current`` marks this one."""
    rows = await service.list_sessions(call.db, call.actor, call.settings)
    return json_response([r.model_dump(mode="json") for r in rows])


async def end_session(call: Call) -> Response:
    """End one of your sessions (404 if it is not yours); its sockets close at once."""
    await service.end_own_session(call.db, call.actor, call.path_str("id"))
    return no_content()


async def mfa_setup(call: Call) -> Response:
    """Start two-factor set-up: a new secret as text, URI and QR code (a full
    session must give the current password)."""
    return json_response(await mfa_service.mfa_setup(
        call.db, call.actor, call.settings, current_password=call.body.current_password,
    ))


async def mfa_confirm(call: Call) -> Response:
    """Turn two-factor on with a code; returns recovery codes once."""
    result: MfaConfirmed = await mfa_service.mfa_confirm(
        call.db, call.actor, code=call.body.code, settings=call.settings
    )
    response = json_response(RecoveryCodesOut(recovery_codes=result.recovery_codes))
    if result.new_session_token:
        set_session_cookie(response, result.new_session_token, call.settings)
    return response


async def mfa_disable(call: Call) -> Response:
    """Turn two-factor off (patients only; needs the password and a code)."""
    await mfa_service.mfa_disable(
        call.db, call.actor, current_password=call.body.current_password, code=call.body.code,
        settings=call.settings,
    )
    return no_content()


_T = "account"

routes: list[BaseRoute] = [
    ApiRoute("/account", get_account, methods=["GET"], response=AccountOut, tag=_T),
    ApiRoute("/account/contact", update_contact, methods=["PATCH"], body=ContactChange,
             response=AccountOut, tag=_T),
    ApiRoute("/account/email/confirm", confirm_email, methods=["POST"], body=EmailConfirm,
             response=StatusOut, tag=_T, auth="public"),
    ApiRoute("/account/username", change_username, methods=["POST"], body=UsernameChange,
             response=AccountOut, tag=_T),
    ApiRoute("/account/password", change_password, methods=["POST"], body=PasswordChange,
             response=StatusOut, tag=_T),
    ApiRoute("/account/security-question", change_security_question, methods=["POST"],
             body=SecurityQuestionChange, response=AccountOut, tag=_T),
    ApiRoute("/account/notifications", set_notifications, methods=["PUT"], body=NotificationPrefs,
             response=AccountOut, tag=_T),
    ApiRoute("/account/time-zone", set_time_zone, methods=["PUT"], body=TimeZoneChoice,
             response=AccountOut, tag=_T),
    ApiRoute("/account/sessions", list_sessions, methods=["GET"], response=SessionRow,
             response_list=True, tag=_T),
    ApiRoute("/account/sessions/{id}", end_session, methods=["DELETE"], status_code=204, tag=_T),
    ApiRoute("/account/mfa/setup", mfa_setup, methods=["POST"], body=MfaSetupIn,
             response=MfaSetupOut, tag=_T, auth="partial"),
    ApiRoute("/account/mfa/confirm", mfa_confirm, methods=["POST"], body=MfaCodeIn,
             response=RecoveryCodesOut, tag=_T, auth="partial"),
    ApiRoute("/account/mfa/disable", mfa_disable, methods=["POST"], body=MfaDisable,
             status_code=204, tag=_T),
]
