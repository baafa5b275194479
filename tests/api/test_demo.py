"""``rtc-server demo`` gives a newcomer working logins on a realistic clinic."""

from __future__ import annotations

from pathlib import Path

from rtc_server.app import create_app
from rtc_server.config import Settings
from rtc_server.demo.run import DEMO_ANSWER, demo_overrides, prepare_demo
from tests.harness import csrf_client


async def test_demo_logins_work_and_a_patient_sees_their_own_contact_details(
    tmp_path: Path, monkeypatch, capsys, secrets_seen
) -> None:
    monkeypatch.setenv("RTC_DATA_DIR", str(tmp_path))
    settings = Settings(**demo_overrides("127.0.0.1", 8000), secret_key="demo-" + "k" * 40)
    logins = await prepare_demo(settings)
    banner = capsys.readouterr().out
    assert "http://127.0.0.1:8000/" in banner
    roles = {x.role.value for x in logins}
    assert roles == {"patient", "provider", "staff", "admin"}
    for x in logins:
        assert x.username in banner and x.password in banner
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        patient = next(x for x in logins if x.role.value == "patient")
        client = await csrf_client(app)
        r = await client.post("/api/v1/auth/login",
                              json={"username": patient.username, "password": patient.password})
        assert r.status_code == 200 and r.json()["status"] == "ok"
        account = (await client.get("/api/v1/account")).json()
        assert account["phone"] and account["security_question"]
        # Forgot-password works for demo patients: their answer is printed too.
        assert DEMO_ANSWER in banner
        provider = next(x for x in logins if x.role.value == "provider")
        other = await csrf_client(app)
        r = await other.post("/api/v1/auth/login",
                             json={"username": provider.username, "password": provider.password})
        assert r.json()["status"] == "mfa_enroll_required"
        await client.aclose()
        await other.aclose()
    # Running the demo again starts from a fresh database.
    again = await prepare_demo(settings)
    assert [x.username for x in again] == [x.username for x in logins]
