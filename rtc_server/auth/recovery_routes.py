"""Forgot password (emailed link, security answer, new password) and forgot username.

The forgot endpoints reply 202 whether or not an account exists; their mail is
queued in the outbox and sent by a worker, and the reply takes at least
``Settings.response_floor_seconds`` either way (``floor=True``).
"""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.auth import recovery
from rtc_server.auth.recovery import ForgotPasswordIn, ForgotUsernameIn, ResetIn, ResetStartIn


class AcceptedOut(BaseModel):
    status: str = "check_email"


class SecurityQuestionOut(BaseModel):
    security_question: str


class ResetOut(BaseModel):
    status: str = "password_reset"


async def forgot_password(call: Call) -> Response:
    """Email a password reset link to the account's address on file (always 202)."""
    await recovery.forgot_password(call.db, body=call.body, meta=call.meta, settings=call.settings)
    return json_response(AcceptedOut(), 202)


async def reset_start(call: Call) -> Response:
    """The security question for a reset link (the link stays unused)."""
    question = await recovery.reset_start(call.db, token=call.body.token, meta=call.meta)
    return json_response(SecurityQuestionOut(security_question=question))


async def reset_password(call: Call) -> Response:
    """Answer the security question and set a new password; every session ends."""
    await recovery.reset_password(call.db, body=call.body, meta=call.meta, settings=call.settings)
    return json_response(ResetOut())


async def forgot_username(call: Call) -> Response:
    """Email the username to the address on file (always 202)."""
    await recovery.forgot_username(call.db, email=call.body.email, meta=call.meta,
                                   settings=call.settings)
    return json_response(AcceptedOut(), 202)


routes: list[BaseRoute] = [
    ApiRoute("/auth/password/forgot", forgot_password, methods=["POST"], body=ForgotPasswordIn,
             response=AcceptedOut, status_code=202, auth="public", tag="recovery", floor=True),
    ApiRoute("/auth/password/reset/start", reset_start, methods=["POST"], body=ResetStartIn,
             response=SecurityQuestionOut, auth="public", tag="recovery"),
    ApiRoute("/auth/password/reset", reset_password, methods=["POST"], body=ResetIn,
             response=ResetOut, auth="public", tag="recovery"),
    ApiRoute("/auth/username/forgot", forgot_username, methods=["POST"], body=ForgotUsernameIn,
             response=AcceptedOut, status_code=202, auth="public", tag="recovery", floor=True),
]
