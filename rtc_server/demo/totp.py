"""``rtc-server totp --username U``: the current two-factor code of a demo account,
for trying the clinic side of the demo without an authenticator app.

It reads only the demo's own data directory (``<data dir>/demo``, marked by
``rtc-server demo``) and refuses any other: on real data it would hand out a
second factor to whoever can run commands on the server.
"""

from __future__ import annotations

import pyotp
from sqlmodel import select

from rtc_server.auth import mfa
from rtc_server.auth.accounts import normalize_username
from rtc_server.auth.models import User
from rtc_server.config import Settings
from rtc_server.db import create_engine, make_session_factory
from rtc_server.demo.run import is_demo_data


class TotpRefused(Exception):
    """No code to give; the message says why in one line."""


async def current_code(settings: Settings, username: str) -> str:
    """The 6-digit code ``username``'s authenticator app would show now. The account
    must have started two-factor set-up (the log-in page shows its key)."""
    if not is_demo_data(settings.data_dir):
        raise TotpRefused(f"{settings.data_dir} is not demo data: this command works only on the demo "
                          "clinic (run `rtc-server demo` in this directory first)")
    engine = create_engine(settings)
    try:
        async with make_session_factory(engine)() as db:
            user = (await db.exec(
                select(User).where(User.username_norm == normalize_username(username)))).one_or_none()
    finally:
        await engine.dispose()
    if user is None or user.id is None:
        raise TotpRefused(f"no demo account named {username!r}")
    if not user.mfa_secret:
        raise TotpRefused(f"{username} has not started two-factor set-up yet: log in as {username} first, "
                          "then run this again")
    try:
        secret = mfa.decrypt_secret(settings.secret, user.id, user.mfa_secret)
    except mfa.MfaSecretError:
        raise TotpRefused("the demo's key does not open this secret (was the demo restarted "
                          "with another RTC_SECRET_KEY?)") from None
    return pyotp.TOTP(secret).now()
