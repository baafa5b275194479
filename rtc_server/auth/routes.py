"""Sign-in, the two-factor step, sign-out and the current session."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.auth import login
from rtc_server.auth.cookies import clear_session_cookie, set_session_cookie
from rtc_server.auth.models import SessionStage, UserPublic


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    # Longer than the policy's 128 so old or odd passwords still get a normal
    # "incorrect" answer, but bounded so nobody makes us hash megabytes.
    password: str = Field(min_length=1, max_length=1024)


class MfaCodeIn(BaseModel):
    code: str = Field(min_length=1, max_length=64)


class LoginOut(BaseModel):
    status: login.LoginStatus
    user: UserPublic | None = Field(default=None, description="Only when status is ok.")


class SessionOut(BaseModel):
    user: UserPublic
    stage: SessionStage
    idle_timeout_seconds: int
    idle_expires_at: datetime
    absolute_expires_at: datetime
    csrf_token: str


def _login_reply(call: Call, result: login.LoginResult) -> Response:
    body = LoginOut(status=result.status)
    if result.status == login.LoginStatus.ok:
        body.user = login.public_user(result.user)
    response = json_response(body.model_dump(mode="json", exclude_none=True))
    set_session_cookie(response, result.token, call.settings)
    return response


async def sign_in(call: Call) -> Response:
    """Username and password; sets a new session cookie (full or partial)."""
    result = await login.sign_in(
        call.db, username=call.body.username, password=call.body.password, meta=call.meta,
        settings=call.settings, old_token=call.session_token,
    )
    return _login_reply(call, result)


async def sign_in_mfa(call: Call) -> Response:
    """The second factor: a TOTP code or a recovery code; rotates the session."""
    result = await login.complete_mfa(
        call.db, token=call.session_token, code=call.body.code, meta=call.meta, settings=call.settings,
    )
    return _login_reply(call, result)


async def sign_out(call: Call) -> Response:
    """End the session on the server and clear the cookie (its sockets close at once)."""
    await login.sign_out(call.db, token=call.session_token, meta=call.meta, settings=call.settings)
    response = Response(status_code=204)
    clear_session_cookie(response, call.settings)
    return response


async def current_session(call: Call) -> Response:
    """Who is signed in, the session's stage and its deadlines (does not count as activity)."""
    cfg = call.settings
    info = await login.session_info(call.db, token=call.session_token, settings=cfg)
    return json_response(SessionOut(
        user=login.public_user(info.user), stage=SessionStage(info.session.stage),
        idle_timeout_seconds=cfg.session_idle_seconds, idle_expires_at=info.idle_expires_at,
        absolute_expires_at=info.absolute_expires_at,
        csrf_token=call.request.scope["state"]["csrf_token"],
    ))


routes: list[BaseRoute] = [
    ApiRoute("/auth/login", sign_in, methods=["POST"], body=LoginIn, response=LoginOut,
             tag="auth", auth="public"),
    ApiRoute("/auth/login/mfa", sign_in_mfa, methods=["POST"], body=MfaCodeIn, response=LoginOut,
             tag="auth", auth="partial"),
    ApiRoute("/auth/logout", sign_out, methods=["POST"], status_code=204, tag="auth", auth="public"),
    ApiRoute("/auth/session", current_session, methods=["GET"], response=SessionOut, tag="auth",
             auth="partial", touch=False),
]
