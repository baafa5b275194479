"""Virtual visits: set-up time of a call, memory per idle signaling room, and the
cost of device checks, on one instance.

    .venv/bin/python bench/visits.py [--calls 50] [--rooms 200] [--device-checks 3]

The server (rtc_server on SQLite, in-process broker, deflate off) runs pinned to
core 0; the aiortc peers run in this process, pinned to core 1.

- **Set-up time**: for each call a fresh visit with both participants already
  admitted and both visit sockets already open (as the waiting-room pages hold
  them). The clock starts when both send ``join`` and stops at the first video
  frame decoded on *each* side (the later of the two, and the first of the two
  are both reported): the server's join (a write and an audit row), the relay of
  the offer and answer, ICE on loopback (aiortc peers get the server's empty ICE
  list), DTLS, and one VP8 frame each way. p50/p95 over ``--calls`` calls.
  Goal: p50 under 0.5 s, p95 under 1 s.
- **Idle rooms**: ``--rooms`` visits, each with two joined sockets and nothing
  flowing; server RSS delta per room (two sockets, two peer channels, one room
  channel, one cached call room), after warm-up.
- **Device checks**: ``--device-checks`` aiortc echo sessions at once, each fed
  by an aiortc sender for 10 s: the server's CPU (share of one core) and RSS per
  check, which is why the default limit is 3 per instance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import ServerProcess, free_port, pin_to  # noqa: E402

PYTHON = sys.executable
SCRIPT = str(Path(__file__).resolve())
SECRET = secrets.token_urlsafe(48)
VISIT_ROUTES = ("rtc_server.rooms.routes", "rtc_server.signaling.ws")


def serve(port: int) -> None:
    """The server process: the app with the visit routes (until app.py lists them)."""
    import uvicorn

    import rtc_server.app as app_module
    from rtc_server.cli import WS_MAX_BYTES
    from rtc_server.config import load_settings

    listed = app_module.FEATURE_ROUTE_MODULES
    app_module.FEATURE_ROUTE_MODULES = (*listed, *(m for m in VISIT_ROUTES if m not in listed))
    settings = load_settings()
    uvicorn.run(app_module.create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                ws="websockets-sansio", ws_max_size=WS_MAX_BYTES, ws_per_message_deflate=False,
                lifespan="on")


def server_env(data_dir: Path, port: int) -> dict[str, str]:
    return {
        "RTC_DATA_DIR": str(data_dir), "RTC_BASE_URL": f"http://127.0.0.1:{port}",
        "RTC_SECRET_KEY": SECRET, "RTC_WS_MAX_PER_USER": "100000", "RTC_LOG_LEVEL": "WARNING",
        "RTC_RESPONSE_FLOOR_SECONDS": "0",
    }


async def prepare(data_dir: Path, port: int, visits: int) -> tuple[str, str, list[int]]:
    """A practitioner, a provider and a patient (sessions inserted directly), and
    ``visits`` open visits in which both are admitted. (provider token, patient token, ids)"""
    from rtc_server.auth.actor import NO_REQUEST
    from rtc_server.auth.models import Role, SessionStage, User, UserStatus
    from rtc_server.auth.sessions import create_session
    from rtc_server.config import load_settings
    from rtc_server.db import create_engine, make_session_factory, utcnow
    from rtc_server.migrate import upgrade
    from rtc_server.records.models import Patient, Practitioner
    from rtc_server.rooms.models import Participant, Visit

    settings = load_settings(data_dir=data_dir, base_url=f"http://127.0.0.1:{port}", secret_key=SECRET)
    engine = create_engine(settings)
    await upgrade(engine)
    try:
        async with make_session_factory(engine)() as db:
            now = utcnow()
            doctor = Practitioner(prefix="Dr.", given_name="Bench", family_name="Mark")
            patient = Patient(given_name="Pat", family_name="Ient", given_norm="pat", family_norm="ient",
                              birth_date=now.date())
            db.add_all([doctor, patient])
            await db.flush()
            users = [
                User(username=name, username_norm=name, password_hash="!", role=role,
                     status=UserStatus.active, created_at=now, patient_id=pid, practitioner_id=prid)
                for name, role, pid, prid in (("bench.doctor", Role.provider, None, doctor.id),
                                              ("bench.patient", Role.patient, patient.id, None))
            ]
            db.add_all(users)
            await db.flush()
            tokens = [await create_session(db, u, SessionStage.full, NO_REQUEST, settings) for u in users]
            ids = []
            for _ in range(visits):
                visit = Visit(patient_id=patient.id or 0, practitioner_id=doctor.id or 0, created_at=now,
                              started_at=now)
                db.add(visit)
                await db.flush()
                for user, role in zip(users, ("provider", "patient"), strict=True):
                    db.add(Participant(visit_id=visit.id or 0, user_id=user.id or 0, role=role,
                                       state="admitted", admitted_at=now))
                ids.append(visit.id or 0)
            await db.commit()
    finally:
        await engine.dispose()
    return tokens[0], tokens[1], ids


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def setup_times(port: int, doctor: str, patient: str,
                      visits: list[int]) -> tuple[list[float], list[float]]:
    from tests.media.aiortc_peer import AiortcPeer

    base, origin = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    both, first = [], []
    for visit_id in visits:
        # The pages' sockets are open already; the offerer is the side whose id sorts higher.
        async with AiortcPeer(base, doctor, origin=origin, offer=True) as a, \
                AiortcPeer(base, patient, origin=origin, offer=False) as b:
            a.want_frames = b.want_frames = 1
            start = time.perf_counter()
            await asyncio.gather(a.join(visit_id), b.join(visit_id))
            await asyncio.wait_for(asyncio.gather(a.frame_seen.wait(), b.frame_seen.wait()), 20)
            ends = [a.first_frame_at or 0, b.first_frame_at or 0]
            both.append(max(ends) - start)
            first.append(min(ends) - start)
    return both, first


async def idle_rooms(server: ServerProcess, port: int, doctor: str, patient: str,
                     visits: list[int]) -> tuple[float, int]:
    from websockets.asyncio.client import connect

    url, origin = f"ws://127.0.0.1:{port}/ws/v1/visit", f"http://127.0.0.1:{port}"

    async def joined(token: str, visit_id: int) -> object:
        ws = await connect(url, origin=origin, additional_headers={"Cookie": f"rtc_session={token}"},
                           compression=None)
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "join", "visit": visit_id}))
        while json.loads(await ws.recv())["type"] != "joined":
            pass
        return ws

    warm = [await joined(t, visits[0]) for t in (doctor, patient)]
    for ws in warm:
        await ws.close()  # type: ignore[attr-defined]
    await asyncio.sleep(1)
    before = server.rss_kib()
    sockets = []
    for visit_id in visits[1:]:
        sockets += await asyncio.gather(joined(doctor, visit_id), joined(patient, visit_id))
    await asyncio.sleep(3)
    after = server.rss_kib()
    for ws in sockets:
        await ws.close()  # type: ignore[attr-defined]
    rooms = len(visits) - 1
    return (after - before) / rooms, rooms


async def device_checks(server: ServerProcess, port: int, doctor: str, n: int) -> tuple[float, float]:
    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import VideoStreamTrack

    base = f"http://127.0.0.1:{port}"
    pcs = []
    async with httpx.AsyncClient(base_url=base, headers={"Origin": base}) as client:
        csrf = (await client.get("/api/v1/auth/csrf")).json()["csrf_token"]
        client.headers["X-CSRF-Token"] = csrf
        client.cookies.set("rtc_session", doctor)
        rss0, cpu0 = server.rss_kib(), server.cpu_seconds()
        t0 = time.perf_counter()
        for _ in range(n):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTrack(VideoStreamTrack())
            pc.on("track", lambda track: None)
            await pc.setLocalDescription(await pc.createOffer())
            r = await client.post("/api/v1/visits/device-check/echo", json={"sdp": pc.localDescription.sdp})
            r.raise_for_status()
            await pc.setRemoteDescription(RTCSessionDescription(r.json()["sdp"], "answer"))
            pcs.append(pc)
        await asyncio.sleep(10)
        rss1, cpu1 = server.rss_kib(), server.cpu_seconds()
        elapsed = time.perf_counter() - t0
        for pc in pcs:
            await pc.close()
    return (cpu1 - cpu0) / elapsed / n, (rss1 - rss0) / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--device-checks", type=int, default=3)
    args = parser.parse_args()
    pin_to(1)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        port = free_port()
        doctor, patient, visits = await prepare(data_dir, port, args.calls + args.rooms + 1)
        command = [PYTHON, SCRIPT, "--serve", str(port)]
        with ServerProcess(command, port=port, core=0, env=server_env(data_dir, port),
                           log=data_dir / "server.log") as server:
            try:
                server.wait_listening()
            except RuntimeError:
                print((data_dir / "server.log").read_text()[-3000:])
                raise
            both, first = await setup_times(port, doctor, patient, visits[:args.calls])
            print(f"visit set-up, both admitted -> first decoded video frame on both sides "
                  f"({args.calls} calls, aiortc peers on loopback):")
            print(f"  p50 {statistics.median(both) * 1000:.0f} ms   "
                  f"p95 {percentile(both, 0.95) * 1000:.0f} ms   max {max(both) * 1000:.0f} ms   "
                  "(goal: p50 < 500 ms, p95 < 1000 ms)")
            print(f"  first side: p50 {statistics.median(first) * 1000:.0f} ms   "
                  f"p95 {percentile(first, 0.95) * 1000:.0f} ms")
            per_room, rooms = await idle_rooms(server, port, doctor, patient, visits[args.calls:])
            print(f"idle signaling rooms: {rooms} rooms (2 joined sockets each): "
                  f"{per_room:.1f} KiB per room, {per_room / 2:.1f} KiB per socket")
            if args.device_checks:
                cpu, rss = await device_checks(server, port, doctor, args.device_checks)
                print(f"device checks: {args.device_checks} at once for 10 s: {cpu * 100:.0f} % of a core "
                      f"and {rss / 1024:.1f} MiB each")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        asyncio.run(main())
