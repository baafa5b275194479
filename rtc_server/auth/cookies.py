"""The session cookie on HTTP responses (transport; services never set cookies).

HttpOnly and SameSite=Lax; over https it is ``__Host-`` prefixed and Secure.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

from rtc_server.auth.sessions import session_cookie_name
from rtc_server.config import Settings

__all__ = ["clear_session_cookie", "session_cookie_name", "session_token", "set_session_cookie"]


def session_token(conn: HTTPConnection, settings: Settings) -> str | None:
    """The session token the client presented, if any."""
    return conn.cookies.get(session_cookie_name(settings))


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        session_cookie_name(settings), token, httponly=True, samesite="lax",
        secure=settings.secure_cookies, path="/", max_age=settings.session_absolute_seconds,
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings), path="/", secure=settings.secure_cookies,
        httponly=True, samesite="lax",
    )
