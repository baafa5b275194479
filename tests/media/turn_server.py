"""coturn (Debian's ``turnserver``) on loopback for the tests: TURN REST credentials
(``use-auth-secret``), no TLS, relays on 127.0.0.1 only. Started by the test that
needs it and stopped after; ``restart`` kills it and starts it again on the same
port, which drops every allocation (a real outage on the media path)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aioice import stun
from aioice.turn import create_turn_endpoint

from rtc_server.rooms.turn import IceConfig, turn_credentials
from tests.harness import need

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
SECRET = "coturn-test-secret-0123456789"
REALM = "rtc.test"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Coturn:
    def __init__(self, workdir: Path, *, min_port: int, max_port: int) -> None:
        self.workdir = workdir
        self.port = _free_udp_port()
        self.min_port, self.max_port = min_port, max_port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "turnserver.log"

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def ice(self, *, relay_only: bool = True, ttl_seconds: int = 600) -> IceConfig:
        return IceConfig(turn_urls=(self.url,), turn_secret=SECRET, ttl_seconds=ttl_seconds,
                         relay_only=relay_only)

    def command(self) -> list[str]:
        return [
            TURNSERVER, "-n", "--no-tls", "--no-dtls", "--use-auth-secret",
            f"--static-auth-secret={SECRET}", f"--realm={REALM}",
            "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={self.port}",
            f"--min-port={self.min_port}", f"--max-port={self.max_port}", "--allow-loopback-peers",
            "--no-cli", "--no-tcp-relay", "--fingerprint", "--no-software-attribute",
            f"--pidfile={self.workdir / 'turnserver.pid'}", f"--userdb={self.workdir / 'turndb'}",
            f"--log-file={self.log}", "--simple-log", "--verbose",
        ]

    async def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:  # ready once it grants an allocation
            try:
                await self.allocate(*turn_credentials(SECRET, "probe", int(time.time()) + 60), timeout=2)
                return
            except (stun.TransactionError, ConnectionError, OSError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    tail = self.log.read_text()[-600:] if self.log.exists() else "(no log)"
                    await self.stop()
                    raise RuntimeError(f"turnserver did not start: {tail}") from None
                await asyncio.sleep(0.1)

    async def allocate(self, username: str, password: str, *, timeout: float = 10) -> tuple[str, int]:
        """Make (and release) one allocation; the relayed address. TransactionFailed
        (401 for a refused credential) when coturn says no."""
        transport, _ = await asyncio.wait_for(create_turn_endpoint(
            asyncio.DatagramProtocol, ("127.0.0.1", self.port), username, password, lifetime=60), timeout)
        try:
            return transport.get_extra_info("sockname")  # type: ignore[no-any-return]
        finally:
            transport.close()

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.kill()
        await asyncio.to_thread(self.process.wait, 10)
        self.process = None

    async def restart(self, down_seconds: float) -> None:
        """An outage: every allocation is lost, then the server is back on the same port."""
        await self.stop()
        await asyncio.sleep(down_seconds)
        await self.start()


@contextlib.asynccontextmanager
async def running_coturn(workdir: Path, *, min_port: int = 49160, max_port: int = 49260
                         ) -> AsyncIterator[Coturn]:
    if not Path(TURNSERVER).exists():
        need("coturn", f"{TURNSERVER} not found (apt-get install coturn)")
    workdir.mkdir(parents=True, exist_ok=True)
    server = Coturn(workdir, min_port=min_port, max_port=max_port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
