"""The demo clinic's lab results (``rtc-server demo`` calls ``prepare_demo_labs``):
history on file, last visit's results new, and one A1c held in Dr. Marsh's queue."""

from __future__ import annotations

from rtc_server.portal.labs.demo import A1C, prepare_demo_labs
from tests.api.test_labs import by_code
from tests.api.test_records import (
    import_demo,
    patient_client,
    provider_client,
)


async def test_the_demo_has_history_new_results_and_one_held_for_review(app, session_factory) -> None:
    clinic = await import_demo(session_factory)  # as the demo imports it: not yet classified
    async with session_factory() as db:
        held = await prepare_demo_labs(db)
        await db.commit()
    async with session_factory() as db:  # a second run (a restarted demo) adds nothing
        assert await prepare_demo_labs(db) == held
        await db.commit()
    patient = await patient_client(app, session_factory, clinic)
    marsh = await provider_client(app, session_factory, clinic)

    labs = (await patient.get("/api/v1/labs")).json()
    a1c = by_code(labs, A1C)
    assert a1c is not None and [p["value"] for p in a1c["history"]] == [8.4, 7.6]  # the held 7.1 is not there
    assert labs["new_count"] == 4  # last visit's four results
    assert [t["code"] for t in labs["held_tests"]] == [A1C]
    assert (await patient.get(f"/api/v1/labs/{held}")).status_code == 404
    queue = (await marsh.get("/api/v1/console/results")).json()
    assert [(i["id"], i["patient"]["name"], i["value"]) for i in queue] == [(held, "María Álvarez", 7.1)]
