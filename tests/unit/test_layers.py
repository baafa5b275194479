"""Services and the policy module import nothing from Starlette, so they can be
called from HTTP routes, WebSocket handlers, the CLI and tests alike."""

from __future__ import annotations

import subprocess
import sys

SERVICES = [
    "rtc_server.auth.actor", "rtc_server.auth.login", "rtc_server.auth.recovery",
    "rtc_server.auth.sessions", "rtc_server.auth.accounts", "rtc_server.auth.mfa",
    "rtc_server.portal.account.service", "rtc_server.portal.account.email_change",
    "rtc_server.portal.account.mfa_service", "rtc_server.admin.service",
    "rtc_server.notify.events", "rtc_server.notify.outbox", "rtc_server.notify.mail",
    "rtc_server.rules", "rtc_server.types", "rtc_server.deps",
]


def test_services_import_nothing_from_starlette() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {SERVICES!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'starlette'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
