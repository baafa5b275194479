"""The load generator the benchmarks share (idle sockets, relay pairs, and later chat).

- ``ServerProcess``: a server command pinned to one core (``taskset``), its
  resident memory (``VmRSS``) and CPU time read from ``/proc``.
- ``Target``: how to reach one server under test (URL per client, headers,
  whether it sends a ``ready`` frame first, how to make and read messages).
- ``Client``: a lean WebSocket client (an ``asyncio.Protocol``: RFC 6455
  framing by hand, no task, queue or future per message), so one core of load
  can drive a server at tens of thousands of messages a second; a general
  client library spends most of that core on itself.
- ``open_clients``/``close_clients``: many clients, opened with bounded concurrency.
- ``run_pairs``: the pair workload. Clients ``2k`` and ``2k+1`` talk to each
  other; messages are offered at a fixed total rate (open loop: the schedule
  does not wait for the server), each carrying its sender, a sequence number
  and its send time, so receivers count what arrived, what was lost or
  duplicated, and the latency.

The load pins itself to the other core (``pin_to``) so server and load do not
share a core on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import subprocess
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TICKS = os.sysconf("SC_CLK_TCK")


def pin_to(core: int) -> None:
    """Run this process on ``core`` only."""
    os.sched_setaffinity(0, {core})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server started as ``taskset -c <core> <command>``; stopped on exit."""

    def __init__(self, command: Sequence[str], *, port: int, core: int = 0,
                 env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.port = port
        self._log = open(log, "wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(core), *command], env={**os.environ, **(env or {})},
            stdout=self._log, stderr=self._log,
        )

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("server did not start listening")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()  # type: ignore[union-attr]

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Target:
    name: str
    #: client index → WebSocket URL
    url: Callable[[int], str]
    #: client index → extra handshake headers (a session cookie)
    headers: Callable[[int], dict[str, str]] = field(default=lambda _i: {})
    origin: str | None = None
    #: The first frame the server sends once the client is live (rtc_server: ``ready``).
    ready_frame: str | None = None
    #: client index, partner index, sequence, send time → the text frame to send
    message: Callable[[int, int, int, int], str] | None = None
    #: a received frame → (sender index, sequence, send time in ns), or None to ignore it
    parse: Callable[[str], tuple[int, int, int] | None] | None = None


# --- a lean WebSocket client ---------------------------------------------------------

_MASK = b"\x00\x00\x00\x00"  # a zero mask is a valid mask, and leaves the payload as it is


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + _MASK + payload


class Client(asyncio.Protocol):
    """One WebSocket client connection; ``on_text(text)`` gets each text message."""

    def __init__(self, request: bytes, on_text: Callable[[str], None] | None = None) -> None:
        self._request = request
        self.on_text = on_text
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.first: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._upgraded = False
        self._inflate: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self._request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.handshake, self.first):
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(_frame(0x1, text.encode()))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(0x8, struct.pack("!H", 1000)))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgraded:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            del self._buffer[:end + 4]
            status = head.split(" ", 2)[1]
            if status != "101":
                self.handshake.set_exception(ConnectionError(f"HTTP {status}"))
                self.transport.close()  # type: ignore[union-attr]
                return
            if "permessage-deflate" in head.lower():
                self._inflate = zlib.decompressobj(-15)
            self._upgraded = True
            self.handshake.set_result(None)
        self._frames()

    def _frames(self) -> None:
        buf = self._buffer
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n = b1 & 0x7F
            at = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = struct.unpack_from("!H", buf, 2)[0]
                at = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = struct.unpack_from("!Q", buf, 2)[0]
                at = 10
            if len(buf) < at + n:
                return
            payload = bytes(buf[at:at + n])
            del buf[:at + n]
            opcode = b0 & 0x0F
            if opcode == 0x1:
                if b0 & 0x40 and self._inflate is not None:  # RSV1: compressed
                    payload = self._inflate.decompress(payload + b"\x00\x00\xff\xff")
                text = payload.decode()
                if not self.first.done():
                    self.first.set_result(text)
                elif self.on_text is not None:
                    self.on_text(text)
            elif opcode == 0x9:
                self.transport.write(_frame(0xA, payload))  # type: ignore[union-attr]
            elif opcode == 0x8:
                code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
                if not self.closed.done():
                    self.closed.set_result(code)
                self.transport.close()  # type: ignore[union-attr]
                return


def _request(url: str, origin: str | None, headers: dict[str, str], deflate: bool) -> bytes:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
             "Sec-WebSocket-Version: 13"]
    if origin:
        lines.append(f"Origin: {origin}")
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def open_clients(target: Target, n: int, *, deflate: bool = False,
                       concurrency: int = 50, start: int = 0) -> list[Client]:
    """``n`` live clients, numbered from ``start`` (each has seen the ready frame, if
    the target sends one)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Client:
        url = target.url(i)
        parts = urlsplit(url)
        request = _request(url, target.origin, target.headers(i), deflate)
        async with gate:
            _transport, client = await loop.create_connection(
                lambda: Client(request), parts.hostname, parts.port)
            await asyncio.wait_for(client.handshake, 60)
            if target.ready_frame is not None:
                first = await asyncio.wait_for(client.first, 60)
                if first != target.ready_frame:
                    raise RuntimeError(f"expected {target.ready_frame}, got {first[:80]!r}")
            else:
                client.first.set_result("")  # nothing to wait for: every frame goes to on_text
            return client

    return list(await asyncio.gather(*(one(i) for i in range(start, start + n))))


async def close_clients(clients: list[Client]) -> None:
    for client in clients:
        client.close()
    await asyncio.gather(*(asyncio.wait_for(c.closed, 10) for c in clients), return_exceptions=True)
    for client in clients:
        if client.transport is not None:
            client.transport.close()


# --- the pair workload ------------------------------------------------------------

def partner(i: int) -> int:
    return i ^ 1


def default_message(sender: int, to: int, seq: int, sent_ns: int) -> str:
    return json.dumps({"from": sender, "to": to, "seq": seq, "t": sent_ns})


def default_parse(text: str) -> tuple[int, int, int] | None:
    msg = json.loads(text)
    return msg["from"], msg["seq"], msg["t"]


@dataclass
class PairResult:
    offered: float
    seconds: float
    sent: int
    delivered: int
    lost: int
    duplicated: int
    latencies_ms: list[float]
    server_cpu_seconds: float = 0.0
    #: Sockets the server had closed by the end of the run (none is expected).
    closed: int = 0

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds

    @property
    def cpu_share(self) -> float:
        """The server's CPU use while sending, as a share of one core."""
        return self.server_cpu_seconds / self.seconds

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run_pairs(target: Target, clients: list[Client], *, rate: float, seconds: float,
                    drain_seconds: float = 3.0,
                    server_cpu: Callable[[], float] | None = None) -> PairResult:
    """Offer ``rate`` messages per second in total for ``seconds``, each from one
    client to its partner, and count what arrives (after the last send, until
    everything arrived or nothing did for ``drain_seconds``). ``server_cpu()``
    (CPU seconds so far) is read around the sending window."""
    make = target.message or default_message
    parse = target.parse or default_parse
    n = len(clients)
    next_seq = [0] * n
    seen: list[set[int]] = [set() for _ in range(n)]
    latencies: list[float] = []
    duplicated = 0

    def receiver(i: int) -> Callable[[str], None]:
        def on_text(text: str) -> None:
            nonlocal duplicated
            got = parse(text)
            if got is None:
                return
            sender, seq, sent_ns = got
            if seq in seen[sender]:
                duplicated += 1
                return
            seen[sender].add(seq)
            latencies.append((time.monotonic_ns() - sent_ns) / 1e6)
        return on_text

    for i, client in enumerate(clients):
        client.on_text = receiver(i)
    interval = 0.001  # send in 1 ms batches
    per_tick = rate * interval
    credit = 0.0
    sender = 0
    sent = 0
    cpu_start = server_cpu() if server_cpu else 0.0
    start = time.monotonic()
    tick = start
    while tick - start < seconds:
        credit += per_tick
        now_ns = time.monotonic_ns()
        while credit >= 1:
            credit -= 1
            i = sender
            sender = (sender + 1) % n
            seq = next_seq[i]
            next_seq[i] += 1
            clients[i].send_text(make(i, partner(i), seq, now_ns))
            sent += 1
        tick += interval
        delay = tick - time.monotonic()
        await asyncio.sleep(max(delay, 0))
    elapsed = time.monotonic() - start
    cpu = (server_cpu() - cpu_start) if server_cpu else 0.0
    # Late messages still count: wait until all arrived or nothing came for ``drain_seconds``.
    last, quiet = -1, 0.0
    while quiet < drain_seconds:
        count = len(latencies)
        if count == sent:
            break
        quiet = quiet + 0.25 if count == last else 0.0
        last = count
        await asyncio.sleep(0.25)
    for client in clients:
        client.on_text = None
    delivered = sum(len(s) for s in seen)
    return PairResult(offered=rate, seconds=elapsed, sent=sent, delivered=delivered,
                      lost=sent - delivered, duplicated=duplicated, latencies_ms=latencies,
                      server_cpu_seconds=cpu, closed=sum(c.closed.done() for c in clients))
