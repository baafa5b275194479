"""Time the FHIR importer and the export on the sample bundles.

    python bench/fhir_import.py [--samples DIR] [--repeat 5] [--postgres URL]

For each sample: a first import into a fresh database (every row created), a
re-import (every row matched and updated in place) and, for patient bundles,
the export of that patient; each the median of ``--repeat`` runs, in
milliseconds. SQLite in a temporary directory by default; ``--postgres`` takes
a server URL (``postgresql://user@host:5432/db``) on which a scratch database
is created and dropped. Figures move with the machine's load: compare them
within one run, not across machines (this is why the suite asserts no time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from rtc_server import audit
from rtc_server.config import Settings
from rtc_server.db import create_engine, make_session_factory
from rtc_server.fhir import import_bundle
from rtc_server.fhir.export import export_patient
from rtc_server.migrate import upgrade
from rtc_server.records.models import Patient

DEFAULT_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fhir-samples"


def _engine(url: str, data_dir: Path) -> AsyncEngine:
    settings = Settings(database_url=url, data_dir=data_dir, secret_key="bench-" + "x" * 40)
    engine = create_engine(settings)
    audit.bind_key(engine, settings.secret)
    return engine


class _Databases:
    """Fresh migrated databases, copied from one migrated template."""

    def __init__(self, folder: Path, postgres: str | None) -> None:
        self.folder = folder
        self.postgres = postgres.replace("postgresql+asyncpg://", "postgresql://") if postgres else None
        self.template = f"rtc_bench_{uuid.uuid4().hex[:10]}"
        self.made: list[str] = []

    def _url(self, name: str) -> str:
        if self.postgres is None:
            return f"sqlite+aiosqlite:///{self.folder / name}.db"
        base = self.postgres.rsplit("/", 1)[0].split("://", 1)[1]
        return f"postgresql+asyncpg://{base}/{name}"

    async def _admin(self, sql: str) -> None:
        import asyncpg

        assert self.postgres is not None
        conn = await asyncpg.connect(self.postgres)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def start(self) -> None:
        if self.postgres is not None:
            await self._admin(f'CREATE DATABASE "{self.template}"')
        engine = _engine(self._url(self.template), self.folder)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    async def fresh(self) -> AsyncEngine:
        name = f"rtc_bench_{uuid.uuid4().hex[:10]}"
        if self.postgres is None:
            shutil.copyfile(self.folder / f"{self.template}.db", self.folder / f"{name}.db")
        else:
            await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            self.made.append(name)
        return _engine(self._url(name), self.folder)

    async def close(self) -> None:
        if self.postgres is not None:
            for name in [*self.made, self.template]:
                await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _timed(action: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000


async def _bench_one(dbs: _Databases, bundle: dict[str, Any]) -> tuple[float, float, float | None]:
    engine = await dbs.fresh()
    factory = make_session_factory(engine)

    async def load() -> None:
        async with factory() as session:
            await import_bundle(session, bundle)
            await session.commit()

    try:
        async with factory() as session:  # connect first: time the import, not the connection
            await session.exec(select(Patient.id).limit(1))
        first = await _timed(load)
        again = await _timed(load)
        patient = next((e["resource"]["id"] for e in bundle.get("entry", [])
                        if e["resource"]["resourceType"] == "Patient"), None)
        exported = None
        if patient is not None:
            async with factory() as session:
                row_id = (await session.exec(select(Patient.id).where(Patient.fhir_id == patient))).one()

                async def export() -> None:
                    await export_patient(session, row_id)

                exported = await _timed(export)
        return first, again, exported
    finally:
        await engine.dispose()


async def main(files: list[Path], repeat: int, postgres: str | None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        dbs = _Databases(Path(tmp), postgres)
        await dbs.start()
        try:
            print(f"{'bundle':<44} {'entries':>7} {'import ms':>10} {'re-import':>10} {'export':>8}")
            for path in files:
                bundle = json.loads(path.read_text(encoding="utf-8"))
                runs = [await _bench_one(dbs, bundle) for _ in range(repeat)]
                first = statistics.median(r[0] for r in runs)
                again = statistics.median(r[1] for r in runs)
                exports = [r[2] for r in runs if r[2] is not None]
                shown = f"{statistics.median(exports):8.1f}" if exports else f"{'-':>8}"
                print(f"{path.name[:44]:<44} {len(bundle.get('entry', [])):>7} "
                      f"{first:>10.1f} {again:>10.1f} {shown}")
        finally:
            await dbs.close()
    print(f"median of {repeat} runs each; {'PostgreSQL' if postgres else 'SQLite'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", help="PostgreSQL server URL; SQLite when omitted")
    args = parser.parse_args()
    found = sorted(args.samples.glob("*.json"))
    if not found:
        sys.exit(f"no sample bundles in {args.samples}")
    sys.exit(asyncio.run(main(found, args.repeat, args.postgres)))
