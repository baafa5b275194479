"""``rtc-server`` commands: serve, demo, migrate, import-fhir, create-staff, audit verify|seal."""

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
from rtc_server.datadir import restrict_umask

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
        ws_per_message_deflate=False,  # ~40 KiB per idle socket otherwise (docs/protocol.md)
        log_level="info",
        proxy_headers=True, forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        log_config=None,
    )


async def _import(settings: Settings, files: Sequence[Path]) -> int:
    import anyio.to_thread

    from rtc_server.db import create_engine, make_session_factory, utcnow
    from rtc_server.fhir.importer import BundleError, import_bundle, load_bundle_file
    from rtc_server.portal.labs.release import triage_imported

    engine = create_engine(settings)
    factory = make_session_factory(engine)
    failed = 0
    try:
        for path in files:
            try:
                bundle = await anyio.to_thread.run_sync(load_bundle_file, path)
                async with factory() as session:
                    summary = await import_bundle(session, bundle, source=path.name)
                    # Release or hold the new results per the clinic's rules; patients are told.
                    await triage_imported(session, settings, now=utcnow(), patient_ids=summary.patient_ids)
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


def _head_arg(text: str) -> object:
    from rtc_server.audit import Head

    try:
        return Head.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    """``audit verify`` only reads. ``audit seal`` verifies first and seals only
    an intact log (rows waiting too long to be sealed are what it is for)."""
    from rtc_server import audit
    from rtc_server.db import create_engine, make_session_factory

    if not settings.secret_key and not (settings.data_dir / "secret_key").exists():
        print(f"rtc-server: no secret key: set RTC_SECRET_KEY or RTC_DATA_DIR "
              f"(there is no {settings.data_dir / 'secret_key'})", file=sys.stderr)
        return 2
    heads = list(args.head or [])
    engine = create_engine(settings)
    try:
        factory = make_session_factory(engine)
        result = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file, heads=heads)
        _print_verify(result)
        if args.action == "verify":
            return 0 if result.ok else 1
        if not result.sealable:
            print("not sealing: the log must verify first", file=sys.stderr)
            return 1
        audit.bind_key(engine, settings.secret)
        sealer = audit.Sealer(factory, settings.secret, head_file=settings.audit_head_file, heads=heads)
        sealed = await sealer.run_once()
        if sealer.problem:
            print(f"not sealing: {sealer.problem}", file=sys.stderr)
            return 1
        after = await audit.verify(factory, settings.secret, head_file=settings.audit_head_file, heads=heads)
        print(f"sealed {sealed} row(s); head seq={after.head.seq if after.head else 0} "
              f"digest={after.head.digest if after.head else '-'}")
        return 0 if after.ok else 1
    finally:
        await engine.dispose()


def _print_verify(result: object) -> None:
    from rtc_server import audit

    assert isinstance(result, audit.VerifyResult)
    if result.ok:
        head = f"; head seq={result.head.seq} digest={result.head.digest}" if result.head else ""
        print(f"audit log intact: {result.checked} rows verified{head}")
    else:
        verdict = "TAMPERED" if result.tampered else "NOT VERIFIED"
        first, *rest = audit.summarize(result.problems)
        print(f"audit log {verdict}: {first}")
        for line in rest[:50]:
            print(f"  {line}")
        if len(rest) > 50:
            print(f"  … and {len(rest) - 50} more")
    for note in result.notes:
        print(f"note: {note}")


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
    au = sub.add_parser(
        "audit", help="audit log tools: verify (read only), seal (verify, then seal new rows)"
    )
    au.add_argument("action", choices=["verify", "seal"])
    au.add_argument("--head", action="append", type=_head_arg, metavar="SEQ:DIGEST",
                    help="a head recorded off this host (the log's 'audit chain head seq=… digest=…'); "
                         "repeatable")
    tp = sub.add_parser("totp", help="demo only: the current two-factor code of a demo account")
    tp.add_argument("--username", required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the server creates (database, mail outbox, audit head, key) is
    # for its own user only.
    restrict_umask()
    args = _parser().parse_args(argv)
    try:
        overrides: dict[str, object] = {}
        if args.command in ("demo", "totp"):
            from rtc_server.demo.run import demo_overrides

            overrides = demo_overrides(getattr(args, "host", "127.0.0.1"), getattr(args, "port", 8000))
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"rtc-server: configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    if args.command in ("serve", "demo"):
        from rtc_server.webfiles import WEB_DIR, require_web_dir

        require_web_dir(WEB_DIR)  # before migrations or demo set-up: one line, exit 1
    if args.command == "serve":
        _serve(settings, args.host, args.port)
        return 0
    if args.command == "demo":
        from rtc_server.demo.run import prepare_demo, print_when_serving, quiet_demo_logs

        quiet_demo_logs()
        asyncio.run(prepare_demo(settings, show=print_when_serving))
        _serve(settings, args.host, args.port)
        return 0
    if args.command == "totp":
        from rtc_server.demo.totp import TotpRefused, current_code

        try:
            print(asyncio.run(current_code(settings, args.username)))
        except TotpRefused as exc:
            print(f"rtc-server totp: {exc}", file=sys.stderr)
            return 2
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
        return asyncio.run(_audit(settings, args))
    return 2
