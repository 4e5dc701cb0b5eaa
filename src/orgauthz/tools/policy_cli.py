"""``orgauthz policy lint | test | diff`` and ``orgauthz explain``: the reviewer's commands.

Exit codes (docs/policies.md):
  lint     0 clean, 1 findings, 2 the directory cannot be read
  test     0 every case passed, 1 a case failed or a test file is invalid, 2 no test files
  diff     0 nothing granted (no change, or only removals), 1 something granted, 2 error
  explain  0 allowed, 1 denied, 2 error
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orgauthz.admin_cli import add_tls_options
from orgauthz.domain.policy import DEFAULT_POLICY_DIR


def default_policy_dir() -> Path:
    """``policies/`` in the working directory (a checkout under review), else the installed one."""
    here = Path("policies")
    return here if (here / "roles.yaml").is_file() else DEFAULT_POLICY_DIR


def cmd_lint(opts: argparse.Namespace) -> int:
    from orgauthz.tools.policy_lint import display_path, lint, warnings

    directory = Path(opts.directory) if opts.directory else default_policy_dir()
    if not directory.is_dir():
        print(f"error: {directory} is not a directory", file=sys.stderr)
        return 2
    for warning in warnings(directory):
        print(f"warning: {warning}", file=sys.stderr)
    findings = lint(directory)
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} finding(s) in {display_path(directory)}", file=sys.stderr)
        return 1
    print(f"{display_path(directory)}: clean")
    return 0


def cmd_test(opts: argparse.Namespace) -> int:
    import asyncio

    from orgauthz.tools.policy_test import run_suite

    directory = Path(opts.directory) if opts.directory else default_policy_dir()
    report = asyncio.run(run_suite(directory, files=[Path(f) for f in opts.file], paths=opts.path))
    for line in report.lines(verbose=opts.verbose):
        print(line)
    return report.exit_code


def cmd_diff(opts: argparse.Namespace) -> int:
    from orgauthz.tools.policy_diff import run_diff

    return run_diff(
        opts.base,
        opts.head,
        policy_path=opts.policy_path,
        fmt=opts.format,
        database_url=opts.database_url,
        out=sys.stdout,
    )


def cmd_explain(opts: argparse.Namespace) -> int:
    from orgauthz.tools.policy_explain import run_explain

    return run_explain(opts, out=sys.stdout)


def add_commands(subparsers: Any) -> None:
    """Adds ``policy`` (lint, test, diff) and ``explain`` to the ``orgauthz`` command."""
    policy = subparsers.add_parser("policy", help="review the files in policies/: lint, test, diff")
    sub = policy.add_subparsers(dest="policy_command", required=True)

    lint = sub.add_parser("lint", help="check policies/ against the SPEC; exit 0 clean, 1 findings")
    lint.add_argument("directory", nargs="?", help="policies directory (default policies/)")
    lint.set_defaults(func=cmd_lint)

    test = sub.add_parser(
        "test", help="run the policy tests in DIR/tests/ on the engine and over gRPC; exit 0 all pass, 1 a failure"
    )
    test.add_argument("directory", nargs="?", help="policies directory (default policies/)")
    test.add_argument("--file", action="append", default=[], help="run only this test file (repeatable)")
    test.add_argument(
        "--path", action="append", choices=["engine", "grpc"], default=[], help="run only this path (default both)"
    )
    test.add_argument("-v", "--verbose", action="store_true", help="list every case")
    test.set_defaults(func=cmd_test)

    diff = sub.add_parser(
        "diff",
        help="effective scopes each built-in role gains or loses between BASE and HEAD; "
        "exit 0 nothing granted, 1 something granted",
    )
    diff.add_argument("base", help="git ref (origin/main) or policies directory")
    diff.add_argument("head", nargs="?", default="", help="git ref or directory (default: policies/ as it is now)")
    diff.add_argument("--format", choices=["text", "markdown"], default="text", help="markdown: a pull-request comment")
    diff.add_argument(
        "--policy-path", default="policies", help="where the policies live in the git tree (default policies)"
    )
    diff.add_argument(
        "--database-url",
        default="",
        help="also list the custom roles in this store that inherit a changed built-in role",
    )
    diff.set_defaults(func=cmd_diff)

    explain = subparsers.add_parser(
        "explain",
        help="why a subject may or may not use a scope: every granting path, "
        "or the missing piece; exit 0 allowed, 1 denied, 2 error",
    )
    explain.add_argument("subject", help="user:<id> or service_account:<id>")
    explain.add_argument("target", help="workspace id (or organization id with --organization)")
    explain.add_argument("scope", help="workspace scope (see_flows) or organization permission (create:invitation)")
    explain.add_argument("--organization", action="store_true", help="TARGET is an organization")
    explain.add_argument("--object", default="", help="deployment:<id>, work_pool:<id> or block:<id> (R26)")
    where = explain.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="ask a running server (host:port) with Check(explain=true)")
    where.add_argument("--database-url", help="build the engine from this store (SQLAlchemy URL)")
    explain.add_argument("--policy-dir", type=Path, help="policies directory, with --database-url (default policies/)")
    explain.add_argument("--auth-token", default="", help="shared secret, if the server requires one")
    add_tls_options(explain)
    explain.add_argument(
        "--min-revision",
        type=int,
        default=0,
        help="with --server: never answer from an older revision (the one a write returned)",
    )
    explain.add_argument("--timeout", type=float, default=5.0, help="seconds, with --server (default 5)")
    explain.set_defaults(func=cmd_explain)
