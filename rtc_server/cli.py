"""``rtc-server`` commands: serve, demo, migrate, import-fhir, create-staff, audit verify."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rtc_server.config import ConfigError, Settings, load_settings

log = logging.getLogger("rtc_server.cli")

#: Largest WebSocket message the server reads at all (close 1009 beyond it);
#: endpoints set tighter limits of their own.
WS_MAX_BYTES = 64 * 1024


class _StripQuery(logging.Filter):
    """Access and WebSocket handshake logs keep the path but drop the query
    string: links carry tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple):
            return True
        if record.name == "uvicorn.access" and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        elif "WebSocket %s" in str(record.msg) and len(args) >= 2 and isinstance(args[1], str):
            record.args = (args[0], args[1].split("?", 1)[0], *args[2:])
        return True


def install_log_filters() -> None:
    strip = _StripQuery()
    logging.getLogger("uvicorn.access").addFilter(strip)
    logging.getLogger("uvicorn.error").addFilter(strip)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_filters()


async def _migrate(settings: Settings) -> None:
    from rtc_server.db import create_engine
    from rtc_server.migrate import upgrade

    engine = create_engine(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from rtc_server.app import create_app

    if settings.auto_migrate:
        asyncio.run(_migrate(settings))
    uvicorn.run(
        create_app(settings), host=host, port=port, ws="websockets-sansio", ws_max_size=WS_MAX_BYTES,
        log_level="info",
        proxy_headers=True, forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        log_config=None,
    )


async def _import(settings: Settings, files: Sequence[Path]) -> int:
    import anyio.to_thread

    from rtc_server.db import create_engine, make_session_factory
    from rtc_server.fhir.importer import BundleError, import_bundle, load_bundle_file

    engine = create_engine(settings)
    factory = make_session_factory(engine)
    failed = 0
    try:
        for path in files:
            try:
                bundle = await anyio.to_thread.run_sync(load_bundle_file, path)
                async with factory() as session:
                    summary = await import_bundle(session, bundle, source=path.name)
                    await session.commit()
            except BundleError as exc:
                failed += 1
                print(f"{path}: rejected: {exc}", file=sys.stderr)
                continue
            print(f"{path}:")
            for line in summary.lines():
                print(f"  {line}")
    finally:
        await engine.dispose()
    return 1 if failed else 0


async def _create_staff(settings: Settings, args: argparse.Namespace) -> int:
    from rtc_server import audit
    from rtc_server.auth.accounts import create_account
    from rtc_server.auth.models import Role
    from rtc_server.db import create_engine, make_session_factory
    from rtc_server.errors import DomainError, InvalidInput

    password = args.password or os.environ.get("RTC_NEW_PASSWORD") or getpass.getpass("Password: ")
    engine = create_engine(settings)
    try:
        async with make_session_factory(engine)() as session:
            try:
                user = await create_account(
                    session, username=args.username, password=password, role=Role(args.role),
                    display_name=args.name or args.username, email=args.email,
                )
            except InvalidInput as exc:
                for field, msg in exc.fields:
                    print(f"{field}: {msg}", file=sys.stderr)
                return 2
            except DomainError as exc:
                print(exc.message, file=sys.stderr)
                return 2
            await audit.record(session, action="account.create", actor_id=None,
                               resource=f"user:{user.id}", outcome="success")
            await session.commit()
            print(f"created {args.role} {user.username} (id {user.id})")
    finally:
        await engine.dispose()
    return 0


async def _audit_verify(settings: Settings) -> int:
    from rtc_server import audit
    from rtc_server.db import create_engine, make_session_factory

    engine = create_engine(settings)
    try:
        factory = make_session_factory(engine)
        await audit.seal(factory, settings.secret, head_file=settings.audit_head_file)
        result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file)
    finally:
        await engine.dispose()
    if result.ok:
        print(f"audit log intact: {result.checked} rows verified")
        return 0
    where = f"row id {result.bad_row_id}: " if result.bad_row_id is not None else ""
    print(f"audit log TAMPERED: {where}{result.reason}")
    return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtc-server", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (("serve", "run the server"), ("demo", "fresh demo clinic and serve")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, default=8000)
    sub.add_parser("migrate", help="apply database migrations")
    imp = sub.add_parser("import-fhir", help="import FHIR R4 bundles")
    imp.add_argument("files", nargs="+", type=Path)
    cs = sub.add_parser("create-staff", help="create a provider, staff or admin account")
    cs.add_argument("--username", required=True)
    cs.add_argument("--role", choices=["provider", "staff", "admin"], required=True)
    cs.add_argument("--name", help="display name")
    cs.add_argument("--email")
    cs.add_argument("--password", help="prefer RTC_NEW_PASSWORD or the prompt")
    au = sub.add_parser("audit", help="audit log tools")
    au.add_argument("action", choices=["verify"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides: dict[str, object] = {}
        if args.command == "demo":
            from rtc_server.demo.run import demo_overrides

            overrides = demo_overrides(args.host, args.port)
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"rtc-server: configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    if args.command == "serve":
        _serve(settings, args.host, args.port)
        return 0
    if args.command == "demo":
        from rtc_server.demo.run import prepare_demo

        asyncio.run(prepare_demo(settings))
        _serve(settings, args.host, args.port)
        return 0
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print("database is up to date")
        return 0
    if args.command == "import-fhir":
        asyncio.run(_migrate(settings))
        return asyncio.run(_import(settings, args.files))
    if args.command == "create-staff":
        asyncio.run(_migrate(settings))
        return asyncio.run(_create_staff(settings, args))
    if args.command == "audit":
        return asyncio.run(_audit_verify(settings))
    return 2
