"""The ``orgauthz`` command: serve, import, check.

Exit codes: ``check`` returns 0 allowed, 1 denied, 2 error; the others 0 or 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from orgauthz.config import Settings
from orgauthz.errors import OrgAuthzError

log = logging.getLogger("orgauthz")

DEMO_FILE = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def _settings(opts: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in (
        "listen",
        "socket_mode",
        "metrics_listen",
        "database_url",
        "redis_url",
        "policy_dir",
        "log_format",
        "auth_token",
        "workers",
    ):
        value = getattr(opts, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(opts, "insecure_dev", False):
        overrides["insecure_dev"] = True
    if getattr(opts, "ext_authz", False):
        overrides["ext_authz"] = True
    return Settings(**overrides)


def _display_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def _prepare_store(settings: Settings, demo: bool) -> None:
    """Migrates the database and loads the demo organization (before any worker starts)."""
    from orgauthz.domain.policy import load_policy
    from orgauthz.store.db import open_store
    from orgauthz.store.importer import import_document

    db = open_store(settings.database_url)
    try:
        if settings.migrate or demo:
            db.migrate()
        if demo:
            doc = yaml.safe_load(DEMO_FILE.read_text())
            result = import_document(db, load_policy(settings.policy_dir), doc)
            log.info("demo organization loaded from %s (revision %d)", DEMO_FILE, result.revision)
    finally:
        db.dispose()


def _until_signalled() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(settings: Settings, demo: bool) -> int:
    from orgauthz.api.server import App

    if demo:
        _prepare_store(settings, demo)
    app = App(settings)
    try:
        await app.start()
    except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
        print(f"error: cannot start: {exc}", file=sys.stderr)
        return 2
    # The real port (the configured one may be 0), and no password from the database URL.
    print(
        f"orgauthz listening on {app.address} "
        f"(gRPC), metrics on port {app.metrics_port or '-'}, "
        f"database {_display_url(settings.database_url)}",
        flush=True,
    )
    await _until_signalled().wait()
    await app.stop()
    return 0


async def _supervise(settings: Settings, demo: bool, workers: int) -> int:
    """``serve --workers N`` (docs/operations.md): the store prepared once, then N workers."""
    from orgauthz.workers import Supervisor, split_address

    try:
        split_address(settings.listen)
        await asyncio.to_thread(_prepare_store, settings, demo)
    except (ValueError, RuntimeError) as exc:
        print(f"error: cannot start: {exc}", file=sys.stderr)
        return 2
    stop = _until_signalled()
    supervisor = Supervisor(settings, workers)
    try:
        try:
            started = await supervisor.start(stop)
        except (ValueError, RuntimeError) as exc:
            print(f"error: cannot start: {exc}", file=sys.stderr)
            await supervisor.drain()
            return 2
        if not started:  # SIGTERM while starting
            await supervisor.drain()
            return 0
        port = settings.metrics_listen.rpartition(":")[2]
        metrics = (
            "-"
            if not settings.metrics_listen
            else f"{port}-{int(port) + workers - 1}"
            if port.isdigit() and int(port)
            else "any (each worker its own)"
        )
        print(
            f"orgauthz listening on {supervisor.address} (gRPC, {workers} workers), metrics on ports {metrics}, "
            f"database {_display_url(settings.database_url)}",
            flush=True,
        )
        await supervisor.run(stop)
    finally:
        supervisor.close()
    return 0


def cmd_serve(opts: argparse.Namespace) -> int:
    from orgauthz.logs import configure
    from orgauthz.workers import worker_count

    settings = _settings(opts)
    configure(settings.log_format, settings.log_level)
    workers = worker_count(settings.workers)
    if workers > 1:
        return asyncio.run(_supervise(settings, opts.demo, workers))
    return asyncio.run(_serve(settings, opts.demo))


def cmd_import(opts: argparse.Namespace) -> int:
    from orgauthz.domain.policy import load_policy
    from orgauthz.store.db import open_store
    from orgauthz.store.importer import import_document

    settings = _settings(opts)
    try:
        doc = yaml.safe_load(Path(opts.file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"error: cannot read {opts.file}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(doc, dict):
        print(f"error: {opts.file} must hold a YAML mapping with `organizations`", file=sys.stderr)
        return 2
    db = open_store(settings.database_url)
    try:
        db.migrate()
        result = import_document(db, load_policy(settings.policy_dir), doc)
    finally:
        db.dispose()
    print(f"imported {result.organizations} organization(s); revision {result.revision}")
    return 0


def cmd_check(opts: argparse.Namespace) -> int:
    import grpc

    from orgauthz.v1 import authorization_pb2 as pb
    from orgauthz.v1 import authorization_pb2_grpc as pb_grpc

    # The variable keeps the secret off the command line (and out of `ps`).
    token = opts.auth_token if opts.auth_token is not None else os.environ.get("ORGAUTHZ_AUTH_TOKEN", "")
    metadata = [("authorization", f"Bearer {token}")] if token else []
    req = pb.CheckRequest(
        subject=opts.subject, scope=opts.scope, explain=True, min_revision=opts.min_revision, object=opts.object
    )
    if opts.organization:
        req.organization = opts.target
    else:
        req.workspace = opts.target
    from orgauthz.admin_cli import UsageError, channel_from

    try:
        channel = channel_from(opts)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with channel:
        try:
            resp = pb_grpc.AuthorizationServiceStub(channel).Check(req, timeout=opts.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 2
    print(f"{'ALLOWED' if resp.allowed else 'DENIED'} at revision {resp.revision}")
    for reason in resp.reasons:
        print(f"  - {reason}")
    return 0 if resp.allowed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orgauthz",
        description="Authorization sidecar for organizations, "
        "workspaces and roles. Options also read ORGAUTHZ_* variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def store_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--database-url", help="SQLAlchemy URL (ORGAUTHZ_DATABASE_URL; default sqlite:///orgauthz.db)")
        p.add_argument("--policy-dir", type=Path, help="policies directory (ORGAUTHZ_POLICY_DIR)")

    serve = sub.add_parser("serve", help="run the gRPC server")
    store_opts(serve)
    serve.add_argument("--listen", help="gRPC address host:port or unix:/path (default 127.0.0.1:50051)")
    serve.add_argument("--socket-mode", help="file mode of a unix: socket, octal (default 660)")
    serve.add_argument("--metrics-listen", help="Prometheus address host:port (default 127.0.0.1:9464; '' disables)")
    serve.add_argument("--redis-url", help="redis://host:port/db for the shared cache (optional)")
    serve.add_argument("--log-format", choices=["text", "json"], help="log format (default text)")
    serve.add_argument("--auth-token", help="shared secret callers must send (ORGAUTHZ_AUTH_TOKEN)")
    serve.add_argument(
        "--insecure-dev", action="store_true", help="accept unauthenticated callers: development only, logged loudly"
    )
    serve.add_argument(
        "--ext-authz",
        action="store_true",
        help="also serve Envoy's external authorization (ORGAUTHZ_EXT_AUTHZ; docs/envoy.md)",
    )
    serve.add_argument(
        "--workers",
        help="worker processes on the one address: a number or auto (one per core); ORGAUTHZ_WORKERS, default 1",
    )
    serve.add_argument("--demo", action="store_true", help=f"load {DEMO_FILE.name} before serving")
    serve.set_defaults(func=cmd_serve)

    imp = sub.add_parser("import", help="load organizations from a YAML file into the store")
    store_opts(imp)
    imp.add_argument("file", help="YAML file (see examples/demo.yaml)")
    imp.set_defaults(func=cmd_import)

    from orgauthz.admin_cli import add_tls_options

    check = sub.add_parser("check", help="ask a running server for a decision; exit 0 allowed, 1 denied, 2 error")
    check.add_argument("subject", help="user:<id> or service_account:<id>")
    check.add_argument("target", help="workspace id (or organization id with --organization)")
    check.add_argument("scope", help="workspace scope such as see_flows, or organization permission")
    check.add_argument("--organization", action="store_true", help="TARGET is an organization")
    check.add_argument("--object", default="", help="deployment:<id>, work_pool:<id> or block:<id> (R26)")
    check.add_argument(
        "--server", default="127.0.0.1:50051", help="server address host:port or unix:/path (default 127.0.0.1:50051)"
    )
    check.add_argument("--auth-token", help="shared secret, if the server requires one (ORGAUTHZ_AUTH_TOKEN)")
    check.add_argument("--min-revision", type=int, default=0, help="never answer from an older revision")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    add_tls_options(check)
    check.set_defaults(func=cmd_check)
    from orgauthz.tools.policy_cli import add_commands as add_policy_commands  # policy lint|test|diff, explain

    add_policy_commands(sub)
    from orgauthz.admin_cli import add_commands as add_admin_commands  # org bootstrap, service-account, invite

    add_admin_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    opts = build_parser().parse_args(argv)
    try:
        code: int = opts.func(opts)
    except OrgAuthzError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a bad ORGAUTHZ_* variable or option value
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the listen address is taken or unreachable
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
