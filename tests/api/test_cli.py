"""The ``orgauthz`` command, run as a user runs it: the installed entry point in a subprocess.

``import`` exits 0 and the data is in the store, or 2 naming what is wrong; ``check`` exits
0 allowed, 1 denied, 2 on error; ``serve`` prints where it really listens, honours
``ORGAUTHZ_*`` variables (flags win), warns loudly in insecure development mode, writes
one JSON object per log line with ``--log-format json`` and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from orgauthz.cli import build_parser, main
from orgauthz.store.db import open_store
from orgauthz.store.models import Membership, Organization, TeamMember, Workspace, WorkspaceGrant
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO_FILE = ROOT / "examples" / "demo.yaml"
LISTENING = re.compile(r"orgauthz listening on (\S+):(\d+) \(gRPC\), metrics on port (\S+),")


def orgauthz_bin() -> str:
    path = Path(sys.executable).parent / "orgauthz"
    if not path.exists():
        pytest.fail(
            f"{path} is missing: install the package into this environment (`pip install -e '.[dev]'`, or `make setup`)"
        )
    return str(path)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ORGAUTHZ_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGAUTHZ_")}
    env.update(extra)
    return env


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [orgauthz_bin(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        check=False,
    )


@dataclass
class Served:
    """An ``orgauthz serve`` subprocess; stdout and stderr go to files read at any time."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    metrics: str
    stdout: Path
    stderr: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def logs(self) -> list[str]:
        return [line for line in self.stderr.read_text().splitlines() if line.strip()]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def serve(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """Starts ``orgauthz serve ARGS`` in ``workdir``; returns once it printed where it listens."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / "serve.stdout", workdir / "serve.stderr"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [orgauthz_bin(), "serve", *args],
            stdout=o,
            stderr=e,
            cwd=workdir,
            env=env if env is not None else clean_env(),
        )
    deadline = time.monotonic() + 60  # a guard against a hung start, not a timing assertion
    while True:
        m = LISTENING.search(out.read_text())
        if m:
            return Served(proc, m[1], int(m[2]), m[3], out, err)
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"orgauthz serve did not start (exit {proc.returncode}):\n{out.read_text()}\n{err.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``orgauthz serve --demo`` on free ports, a temporary SQLite file and JSON logs."""
    workdir = tmp_path_factory.mktemp("serve-demo")
    served = serve(
        workdir,
        "--demo",
        "--insecure-dev",
        "--log-format",
        "json",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--database-url",
        f"sqlite:///{workdir / 'demo.db'}",
    )
    yield served
    served.stop()


# --- help --------------------------------------------------------------------------------

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_help_names_every_subcommand() -> None:
    done = run("--help")
    assert done.returncode == 0, done.stderr
    assert "ORGAUTHZ_" in done.stdout
    for name in SUBCOMMANDS:
        assert name in done.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: orgauthz {name}")
    assert "options:" in out


def test_no_subcommand_is_a_usage_error() -> None:
    done = run()
    assert done.returncode == 2
    assert "usage: orgauthz" in done.stderr


# --- import ------------------------------------------------------------------------------


def test_import_loads_the_file_into_the_store(store_url: str, tmp_path: Path) -> None:
    done = run("import", str(DEMO_FILE), "--database-url", store_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"imported 1 organization\(s\); revision [1-9]\d*", done.stdout)

    db = open_store(store_url)
    try:
        with db.read() as s:
            assert s.scalars(select(Organization.id)).all() == ["acme"]
            assert sorted(s.scalars(select(Workspace.id))) == ["acme-prod", "acme-sandbox"]
            assert len(s.scalars(select(Membership.org_id)).all()) == 3
            assert len(s.scalars(select(WorkspaceGrant.workspace_id)).all()) == 4  # one of them a team's
            assert s.scalars(select(TeamMember.subject).order_by(TeamMember.subject)).all() == [
                "service_account:ci-bot",
                "user:carol",
            ]
    finally:
        db.dispose()


def _demo_with(path: list[str | int], value: object) -> str:
    doc = yaml.safe_load(DEMO_FILE.read_text())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return yaml.safe_dump(doc)


BAD_FILES = [
    (
        "unknown workspace role",
        _demo_with(["organizations", 0, "workspaces", 0, "access", 1, "role"], "Superuser"),
        "organizations[0].workspaces[0].access[1].role",
    ),
    (
        "malformed member id",
        _demo_with(["organizations", 0, "members", 2, "user"], "carol smith"),
        "organizations[0].members[2].user",
    ),
    (
        "unknown scope in a custom role",
        _demo_with(["organizations", 0, "custom_roles", 0, "scopes"], ["see_flows", "fly_rockets"]),
        "organizations[0].custom_roles[0].scopes[1]",
    ),
    ("not a mapping", "- just\n- a list\n", "must hold a YAML mapping"),
    ("not YAML", "organizations: [unclosed\n", "cannot read"),
]


@pytest.mark.parametrize(("content", "named"), [pytest.param(c, n, id=i) for i, c, n in BAD_FILES])
def test_import_of_a_bad_file_exits_2_naming_the_path_and_writes_nothing(
    content: str, named: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    done = run("import", str(bad), "--database-url", url, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert named in done.stderr
    assert "Traceback" not in done.stderr
    if (tmp_path / "store.db").exists():
        db = open_store(url)
        try:
            with db.read() as s:
                assert s.scalars(select(Organization.id)).all() == []
        finally:
            db.dispose()


def test_import_of_a_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    done = run("import", str(missing), "--database-url", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)
    assert done.returncode == 2
    assert str(missing) in done.stderr
    assert "Traceback" not in done.stderr


# --- serve and check ---------------------------------------------------------------------


def test_serve_demo_prints_where_it_really_listens(demo_server: Served) -> None:
    assert demo_server.host == "127.0.0.1"
    assert demo_server.port != 0
    assert demo_server.metrics.isdigit()
    assert int(demo_server.metrics) != 0
    assert "demo.db" in demo_server.stdout.read_text()


CHECKS = [
    # (id, args, exit code, text on stdout)
    ("workspace role", ["user:bob", "acme-prod", "manage_flows"], 0, "workspace role Developer"),
    ("default role", ["user:carol", "acme-prod", "see_flows"], 0, "default workspace role Viewer"),
    ("admin", ["user:alice", "acme-sandbox", "manage_workspace_users"], 0, "organization Owner"),
    ("organization admin", ["user:alice", "acme", "create:invitation", "--organization"], 0, "organization Owner"),
    ("denied", ["user:carol", "acme-prod", "manage_flows"], 1, "DENIED"),
    ("organization member denied", ["user:bob", "acme", "create:invitation", "--organization"], 1, "DENIED"),
    ("unknown subject", ["user:nobody", "acme-prod", "see_flows"], 1, "DENIED"),
]


@pytest.mark.parametrize(("args", "code", "text"), [pytest.param(a, c, t, id=i) for i, a, c, t in CHECKS])
def test_check_exits_0_allowed_1_denied_and_prints_why(
    demo_server: Served, args: list[str], code: int, text: str
) -> None:
    done = run("check", *args, "--server", demo_server.address)
    assert done.returncode == code, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("ALLOWED" if code == 0 else "DENIED")
    assert re.search(r"at revision [1-9]\d*", first)
    assert text in done.stdout


def test_check_exits_2_on_invalid_argument(demo_server: Served) -> None:
    done = run("check", "user:bob", "acme-prod", "fly_rockets", "--server", demo_server.address)
    assert done.returncode == 2
    assert "INVALID_ARGUMENT" in done.stderr
    assert "scope" in done.stderr
    assert done.stdout == ""


def test_check_exits_2_when_no_server_answers() -> None:
    done = run("check", "user:bob", "acme-prod", "see_flows", "--server", f"127.0.0.1:{free_port()}", "--timeout", "5")
    assert done.returncode == 2
    assert "UNAVAILABLE" in done.stderr or "DEADLINE_EXCEEDED" in done.stderr


def test_json_logs_are_one_object_per_line(demo_server: Served) -> None:
    lines = demo_server.logs()
    assert lines, "serve wrote no logs"
    records = [json.loads(line) for line in lines]
    for record in records:
        assert isinstance(record, dict)
        assert {"time", "level", "logger", "message"} <= record.keys()
    messages = [r["message"] for r in records]
    assert any("demo organization loaded" in m for m in messages)
    assert any(f"serving on 127.0.0.1:{demo_server.port}" in m for m in messages)


def test_insecure_dev_is_logged_as_a_warning(demo_server: Served) -> None:
    records = [json.loads(line) for line in demo_server.logs()]
    assert any(r["level"] == "warning" and "INSECURE" in r["message"] for r in records)


def test_serve_honours_orgauthz_variables_and_flags_win(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        ORGAUTHZ_LISTEN=f"127.0.0.1:{port}",
        ORGAUTHZ_DATABASE_URL=f"sqlite:///{tmp_path / 'env.db'}",
        ORGAUTHZ_LOG_FORMAT="json",
        ORGAUTHZ_INSECURE_DEV="true",
        ORGAUTHZ_METRICS_LISTEN="127.0.0.1:1",  # overridden by the flag below
    )
    served = serve(tmp_path, "--demo", "--metrics-listen", "", env=env)
    try:
        assert served.address == f"127.0.0.1:{port}"
        assert served.metrics == "-"
        assert (tmp_path / "env.db").exists()
        done = run("check", "user:bob", "acme-prod", "see_flows", "--server", served.address)
        assert done.returncode == 0, done.stderr
    finally:
        code = served.stop()
    assert code == 0, served.stderr.read_text()
    records = [json.loads(line) for line in served.logs()]
    assert any(r["level"] == "warning" and "INSECURE" in r["message"] for r in records)


def test_check_sends_the_shared_secret_from_its_flag_or_variable(tmp_path: Path) -> None:
    served = serve(
        tmp_path,
        "--demo",
        "--auth-token",
        "s3cret",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "",
        "--database-url",
        f"sqlite:///{tmp_path / 's.db'}",
    )
    ask = ("check", "user:bob", "acme-prod", "see_flows", "--server", served.address)
    try:
        without = run(*ask)
        wrong = run(*ask, "--auth-token", "guess")
        with_flag = run(*ask, "--auth-token", "s3cret")
        with_variable = run(*ask, env=clean_env(ORGAUTHZ_AUTH_TOKEN="s3cret"))
    finally:
        assert served.stop() == 0
    assert without.returncode == 2
    assert "UNAUTHENTICATED" in without.stderr
    assert wrong.returncode == 2
    assert "UNAUTHENTICATED" in wrong.stderr
    assert with_flag.returncode == 0, with_flag.stderr
    assert with_variable.returncode == 0, with_variable.stderr
    assert "INSECURE" not in served.stderr.read_text()
    assert "s3cret" not in served.stderr.read_text() + served.stdout.read_text()


def test_serve_exits_2_when_its_address_is_taken(demo_server: Served, tmp_path: Path) -> None:
    done = run(
        "serve",
        "--listen",
        demo_server.address,
        "--metrics-listen",
        "",
        "--database-url",
        f"sqlite:///{tmp_path / 's.db'}",
        "--insecure-dev",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert demo_server.address in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_exits_2_on_an_invalid_variable(tmp_path: Path) -> None:
    done = run("serve", cwd=tmp_path, env=clean_env(ORGAUTHZ_LOG_FORMAT="xml"))
    assert done.returncode == 2
    assert "log_format" in done.stderr
    assert "Traceback" not in done.stderr
