"""ICE servers for a participant: STUN/TURN URLs from the settings and
short-lived TURN credentials in the TURN REST form coturn checks with
``use-auth-secret`` / ``static-auth-secret``::

    username   = "<expiry unix time>:<user>"
    credential = base64(HMAC-SHA1(secret, username))

coturn recomputes the HMAC with the shared secret and refuses the credential
once the expiry has passed, so nothing is stored and nothing has to be
revoked; each join hands out fresh ones.

Settings read (H1 adds them to ``config.Settings``; until then the defaults
below apply, read with ``getattr``):

- ``stun_urls``: list of ``stun:host:port`` (default none),
- ``turn_urls``: list of ``turn:host:port?transport=udp|tcp`` / ``turns:…``,
- ``turn_secret``: the shared secret (no TURN without it),
- ``turn_ttl_seconds``: credential lifetime (default 4 hours: a visit that
  runs long keeps its allocation; a reconnect gets new ones),
- ``ice_relay_only``: browsers use TURN relays only (``iceTransportPolicy:
  "relay"``), so neither side learns the other's IP address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_TTL_SECONDS = 4 * 3600


@dataclass(frozen=True)
class IceConfig:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    relay_only: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> IceConfig:
        def urls(name: str) -> tuple[str, ...]:
            value = getattr(settings, name, None) or ()
            if isinstance(value, str):
                value = [u for u in value.split(",")]
            return tuple(u.strip() for u in value if u and u.strip())

        return cls(
            stun_urls=urls("stun_urls"), turn_urls=urls("turn_urls"),
            turn_secret=getattr(settings, "turn_secret", None) or None,
            ttl_seconds=int(getattr(settings, "turn_ttl_seconds", DEFAULT_TTL_SECONDS)),
            relay_only=bool(getattr(settings, "ice_relay_only", False)),
        )

    @property
    def policy(self) -> Literal["all", "relay"]:
        return "relay" if self.relay_only else "all"


def turn_credentials(secret: str, user: str, expires_at: int) -> tuple[str, str]:
    """The TURN REST username and credential for ``user`` until ``expires_at`` (unix time)."""
    username = f"{expires_at}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(config: IceConfig, *, user: str, now: float) -> list[dict[str, Any]]:
    """``RTCIceServer`` dictionaries for one participant. ``user`` names the
    participant in coturn's log (an opaque id, never a name)."""
    servers: list[dict[str, Any]] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls and config.turn_secret:
        username, credential = turn_credentials(
            config.turn_secret, user, int(now) + config.ttl_seconds)
        servers.append({"urls": list(config.turn_urls), "username": username, "credential": credential})
    return servers
