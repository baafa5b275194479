"""Sign-in, the two-factor step, sign-out and the current session."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import api_route, json_response, read_body
from rtc_server.auth import login
from rtc_server.auth.models import SessionStage, UserPublic
from rtc_server.auth.sessions import clear_session_cookie, session_cookie_name, set_session_cookie
from rtc_server.context import db, mailer, meta, settings
from rtc_server.notify.live import announce_session_change
from rtc_server.notify.mail import with_mail


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


def _cookie(request: Request) -> str | None:
    return request.cookies.get(session_cookie_name(settings(request)))


def _login_reply(request: Request, result: login.LoginResult) -> Response:
    body = LoginOut(status=result.status)
    if result.status == login.LoginStatus.ok:
        body.user = login.public_user(result.user)
    response = json_response(body.model_dump(mode="json", exclude_none=True))
    set_session_cookie(response, result.token, settings(request))
    return with_mail(response, request, result.mails)


async def sign_in(request: Request) -> Response:
    """Username and password; sets a new session cookie (full or partial)."""
    body = await read_body(request, LoginIn)
    async with db(request) as session:
        result = await login.sign_in(
            session, username=body.username, password=body.password, meta=meta(request),
            settings=settings(request), mailer=mailer(request), old_token=_cookie(request),
        )
    return _login_reply(request, result)


async def sign_in_mfa(request: Request) -> Response:
    """The second factor: a TOTP code or a recovery code; rotates the session."""
    body = await read_body(request, MfaCodeIn)
    async with db(request) as session:
        result = await login.complete_mfa(
            session, token=_cookie(request), code=body.code, meta=meta(request),
            settings=settings(request), mailer=mailer(request),
        )
    return _login_reply(request, result)


async def sign_out(request: Request) -> Response:
    """End the session on the server and clear the cookie."""
    async with db(request) as session:
        user_id = await login.sign_out(session, token=_cookie(request), meta=meta(request),
                                       settings=settings(request))
    if user_id is not None:
        await announce_session_change(request, user_id)
    response = Response(status_code=204)
    clear_session_cookie(response, settings(request))
    return response


async def current_session(request: Request) -> Response:
    """Who is signed in, the session's stage and its deadlines (does not count as activity)."""
    cfg = settings(request)
    async with db(request) as session:
        info = await login.session_info(session, token=_cookie(request), settings=cfg)
    return json_response(SessionOut(
        user=login.public_user(info.user), stage=SessionStage(info.session.stage),
        idle_timeout_seconds=cfg.session_idle_seconds, idle_expires_at=info.idle_expires_at,
        absolute_expires_at=info.absolute_expires_at,
        csrf_token=request.scope["state"]["csrf_token"],
    ))


routes: list[BaseRoute] = [
    api_route("/auth/login", sign_in, methods=["POST"], body=LoginIn, response=LoginOut,
              tag="auth", auth="public"),
    api_route("/auth/login/mfa", sign_in_mfa, methods=["POST"], body=MfaCodeIn, response=LoginOut,
              tag="auth"),
    api_route("/auth/logout", sign_out, methods=["POST"], status_code=204, tag="auth"),
    api_route("/auth/session", current_session, methods=["GET"], response=SessionOut, tag="auth"),
]
