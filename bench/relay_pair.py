"""The pair workload through rtc_server's real-time layer beside the bare relays.

    .venv/bin/python bench/relay_pair.py [--rates 5000,10000,15000] [--seconds 20] [--repeat 3]

1,000 clients in 500 two-person pairs (``--clients``); each offered rate is
held for ``--seconds`` (open loop) and repeated ``--repeat`` times; the median
run is printed: delivered msg/s, p50/p99 latency, lost, duplicated, the
server's CPU as a share of its one core, and its CPU time per message (the
figure least disturbed by other work on a shared machine). Servers: the bare ``websockets``
relay, the bare Starlette relay under uvicorn (bench/relays.py) and
rtc_server with the bench endpoint of bench/hub_relay.py (sign-in at the
handshake, frame validation and rate limit, one broker publish and one hub
encoding per message; no storage). The last column is rtc_server's p99
over the bare Starlette relay's p99 at the same rate, in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from events_idle import SECRET, Server, make_users, relay
from loadgen import (
    PairResult,
    ServerProcess,
    Target,
    close_clients,
    free_port,
    open_clients,
    partner,
    pin_to,
    run_pairs,
)

ROOT = Path(__file__).resolve().parents[1]


def hub_server(data_dir: Path, port: int, tokens: list[str]) -> Server:
    base = f"http://127.0.0.1:{port}"
    env = {"RTC_DATA_DIR": str(data_dir), "RTC_BASE_URL": base, "RTC_WS_MAX_TOTAL": "100000",
           "RTC_LOG_LEVEL": os.environ.get("RTC_LOG_LEVEL", "WARNING"), "RTC_SECRET_KEY": SECRET}

    def message(sender: int, to: int, seq: int, sent_ns: int) -> str:
        # Client i is user i + 1 (a fresh database numbers them in order).
        return json.dumps({"type": "say", "to": to + 1, "from": sender, "seq": seq, "t": sent_ns})

    def parse(text: str) -> tuple[int, int, int] | None:
        frame = json.loads(text)
        if frame.get("type") != "event":
            return None
        event = frame["event"]
        return event["from"], event["seq"], event["t"]

    target = Target(
        name="rtc_server hub (no storage)", url=lambda _i: f"ws://127.0.0.1:{port}/ws/bench/pair",
        headers=lambda i: {"Cookie": f"rtc_session={tokens[i]}"}, origin=base,
        ready_frame='{"type":"ready"}', message=message, parse=parse,
    )
    return Server(target.name, [sys.executable, str(ROOT / "bench/hub_relay.py"), "--port", str(port)],
                  env, target)


async def run_server(server: Server, port: int, n: int, rates: list[int], seconds: float, repeat: int,
                     core: int, log: Path) -> dict[int, PairResult]:
    medians: dict[int, PairResult] = {}
    with ServerProcess(server.command, port=port, core=core, env=server.env, log=log) as proc:
        proc.wait_listening()
        clients = await open_clients(server.target, n)
        for rate in rates:
            runs = [await run_pairs(server.target, clients, rate=rate, seconds=seconds,
                                    server_cpu=proc.cpu_seconds) for _ in range(repeat)]
            runs.sort(key=lambda r: r.rate)
            medians[rate] = runs[len(runs) // 2]
        await close_clients(clients)
    return medians


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rates", default="5000,10000,15000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--only", help="run only the servers whose name contains this")
    args = parser.parse_args()
    assert args.clients % 2 == 0 and all(partner(i) < args.clients for i in range(args.clients))
    rates = [int(r) for r in args.rates.split(",")]
    pin_to(args.client_core)
    work = Path(tempfile.mkdtemp(prefix="rtc-pair-"))
    port = free_port()
    tokens = await make_users(work / "data", args.clients, f"http://127.0.0.1:{port}")
    servers = [relay("websockets", port), relay("starlette", port), hub_server(work / "data", port, tokens)]
    servers = [s for s in servers if not args.only or args.only in s.name]
    print(f"pair workload: {args.clients} clients in {args.clients // 2} pairs, {args.seconds:g} s per "
          f"rate, median of {args.repeat}; server on core {args.server_core}, load on core "
          f"{args.client_core}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'server':32} {'offered':>8} {'delivered':>10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>7} "
          f"{'dup':>5} {'cpu':>5} {'µs/msg':>7} {'p99/starlette':>14}")
    results: dict[str, dict[int, PairResult]] = {}
    for server in servers:
        results[server.name] = await run_server(server, port, args.clients, rates, args.seconds,
                                                args.repeat, args.server_core,
                                                work / f"{server.name.split()[0]}.log")
        for rate, r in results[server.name].items():
            base = results.get("bare Starlette relay (uvicorn)", {}).get(rate)
            ratio = f"{r.percentile(99) / base.percentile(99):.2f}" if base else ""
            closed = f"  ({r.closed} sockets closed by the server)" if r.closed else ""
            print(f"{server.name:32} {rate:>8} {r.rate:>10.0f} {r.percentile(50):>8.1f} "
                  f"{r.percentile(99):>8.1f} {r.lost:>7} {r.duplicated:>5} {r.cpu_share:>5.0%} "
                  f"{r.server_cpu_seconds / max(r.sent, 1) * 1e6:>7.1f} {ratio:>14}{closed}", flush=True)
    print(f"(server logs in {work})")


if __name__ == "__main__":
    asyncio.run(main())
