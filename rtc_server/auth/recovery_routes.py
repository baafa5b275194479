"""Forgot password (emailed link, security answer, new password) and forgot username.

The forgot endpoints reply 202 whether or not an account exists; their mail
goes out in a background task after the reply, and the reply takes at least
``timing.MIN_RESPONSE_SECONDS`` either way.
"""

from __future__ import annotations

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import api_route, json_response, read_body
from rtc_server.auth import recovery
from rtc_server.auth.recovery import ForgotPasswordIn, ForgotUsernameIn, ResetIn, ResetStartIn
from rtc_server.auth.timing import response_floor
from rtc_server.context import db, meta, settings
from rtc_server.notify.mail import with_mail


class AcceptedOut(BaseModel):
    status: str = "check_email"


class SecurityQuestionOut(BaseModel):
    security_question: str


class ResetOut(BaseModel):
    status: str = "password_reset"


async def forgot_password(request: Request) -> Response:
    """Email a password reset link to the account's address on file (always 202)."""
    async with response_floor():
        body = await read_body(request, ForgotPasswordIn)
        async with db(request) as session:
            mails = await recovery.forgot_password(session, body=body, meta=meta(request),
                                                   settings=settings(request))
    return with_mail(json_response(AcceptedOut(), 202), request, mails)


async def reset_start(request: Request) -> Response:
    """The security question for a reset link (the link stays unused)."""
    body = await read_body(request, ResetStartIn)
    async with db(request) as session:
        question = await recovery.reset_start(session, token=body.token, meta=meta(request))
    return json_response(SecurityQuestionOut(security_question=question))


async def reset_password(request: Request) -> Response:
    """Answer the security question and set a new password; every session ends."""
    body = await read_body(request, ResetIn)
    async with db(request) as session:
        mails = await recovery.reset_password(session, body=body, meta=meta(request),
                                              settings=settings(request))
    return with_mail(json_response(ResetOut()), request, mails)


async def forgot_username(request: Request) -> Response:
    """Email the username to the address on file (always 202)."""
    async with response_floor():
        body = await read_body(request, ForgotUsernameIn)
        async with db(request) as session:
            mails = await recovery.forgot_username(session, email=body.email, meta=meta(request),
                                                   settings=settings(request))
    return with_mail(json_response(AcceptedOut(), 202), request, mails)


routes: list[BaseRoute] = [
    api_route("/auth/password/forgot", forgot_password, methods=["POST"], body=ForgotPasswordIn,
              response=AcceptedOut, status_code=202, auth="public", tag="recovery"),
    api_route("/auth/password/reset/start", reset_start, methods=["POST"], body=ResetStartIn,
              response=SecurityQuestionOut, auth="public", tag="recovery"),
    api_route("/auth/password/reset", reset_password, methods=["POST"], body=ResetIn,
              response=ResetOut, auth="public", tag="recovery"),
    api_route("/auth/username/forgot", forgot_username, methods=["POST"], body=ForgotUsernameIn,
              response=AcceptedOut, status_code=202, auth="public", tag="recovery"),
]
