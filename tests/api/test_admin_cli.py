"""Operator commands against a running ``orgauthz serve`` protected by a shared secret.

``org bootstrap``, ``service-account create`` and ``invite`` run as a user runs them (the
installed entry point in a subprocess). They exit 0 and say what they did, or exit 2 with
``error: <STATUS>: <why>``; the API key is printed once, alone on the last line of stdout.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from orgauthz.client import Client
from tests.api.test_cli import Served, clean_env, run, serve

TOKEN = "admin-cli-secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("admin-cli")
    served = serve(
        workdir,
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "",
        "--auth-token",
        TOKEN,
        "--database-url",
        f"sqlite:///{workdir / 'orgauthz.db'}",
    )
    yield served
    served.stop()


def admin(server: Served, *args: str, token: str | None = TOKEN, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs ``orgauthz ARGS --server <server>``, with the shared secret in ORGAUTHZ_AUTH_TOKEN."""
    extra = {"ORGAUTHZ_AUTH_TOKEN": token} if token is not None else {}
    return run(*args, "--server", server.address, env=clean_env(**extra, **env))


def bootstrap(server: Served, org: str, admin_user: str = "alice") -> None:
    r = admin(
        server,
        "org",
        "bootstrap",
        "--id",
        org,
        "--handle",
        org,
        "--name",
        org.title(),
        "--admin-user",
        admin_user,
        "--admin-email",
        f"{admin_user}@{org}.test",
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("command", [["org", "bootstrap"], ["service-account", "create"], ["invite"]])
def test_each_operator_command_has_help(command: list[str]) -> None:
    r = run(*command, "--help")
    assert r.returncode == 0
    for option in ("--server", "--auth-token", "--actor"):
        assert option in r.stdout


def test_bootstrap_creates_the_organization_with_its_first_admin(server: Served) -> None:
    r = admin(
        server,
        "org",
        "bootstrap",
        "--id",
        "acme",
        "--handle",
        "acme",
        "--name",
        "Acme Inc.",
        "--admin-user",
        "alice",
        "--admin-email",
        "alice@acme.test",
        "--max-workspaces",
        "20",
    )
    assert r.returncode == 0, r.stderr
    assert "created organization acme (handle acme, name 'Acme Inc.') with Owner user:alice" in r.stdout
    assert "20 workspaces" in r.stdout
    with Client(server.address, token=TOKEN) as c:
        assert c.check("user:alice", organization="acme", scope="create:invitation").allowed

    again = admin(
        server, "org", "bootstrap", "--handle", "acme", "--name", "Acme", "--admin-user", "bob", "--id", "acme"
    )
    assert again.returncode == 2
    assert again.stderr.startswith("error: ALREADY_EXISTS:")


def test_commands_need_the_shared_secret(server: Served) -> None:
    for token in (None, "wrong"):
        r = admin(server, "org", "bootstrap", "--handle", "nope", "--name", "Nope", "--admin-user", "x", token=token)
        assert r.returncode == 2
        assert r.stderr.startswith("error: UNAUTHENTICATED:")
    flag = run(
        "org",
        "bootstrap",
        "--handle",
        "flagged",
        "--name",
        "Flagged",
        "--admin-user",
        "x",
        "--server",
        server.address,
        "--auth-token",
        TOKEN,
    )
    assert flag.returncode == 0, flag.stderr


def test_service_account_create_prints_its_key_once(server: Served) -> None:
    bootstrap(server, "sa-org")
    r = admin(
        server, "service-account", "create", "--org", "sa-org", "--name", "CI", "--id", "ci", "--actor", "user:alice"
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "created service account ci ('CI') in sa-org with role Member" in lines[0]
    key = lines[-1]
    assert key.startswith("pnb_")
    assert r.stdout.count(key) == 1
    assert "shown this once" in r.stderr
    with Client(server.address, token=TOKEN) as c:
        who = c.authenticate(key)
    assert (who.service_account, who.organization) == ("ci", "sa-org")


def test_service_account_create_refusals_exit_2(server: Served) -> None:
    bootstrap(server, "sa-refusals")
    cases = [
        ([], "error: --actor user:<id> (or ORGAUTHZ_ACTOR) is required"),
        (["--actor", "service_account:ci"], "error: --actor must be user:<id>"),
        (["--actor", "user:mallory"], "error: NOT_FOUND:"),  # not in the organization: not even confirmed
        (["--actor", "user:alice", "--role", "Admin"], "error: INVALID_ARGUMENT: org_role:"),  # R11
    ]
    for extra, message in cases:
        r = admin(server, "service-account", "create", "--org", "sa-refusals", "--name", "bot", *extra)
        assert r.returncode == 2, (extra, r.stdout)
        assert r.stderr.startswith(message), (extra, r.stderr)
        assert "pnb_" not in r.stdout + r.stderr


def test_actor_from_the_environment(server: Served) -> None:
    bootstrap(server, "env-org")
    r = admin(server, "service-account", "create", "--org", "env-org", "--name", "env-bot", ORGAUTHZ_ACTOR="user:alice")
    assert r.returncode == 0, r.stderr


def test_invite_reports_each_address(server: Served) -> None:
    bootstrap(server, "inv-org", admin_user="ivy")
    r = admin(server, "invite", "--org", "inv-org", "--actor", "user:ivy", "bob@inv-org.test", "Carol@inv-org.test")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("bob@inv-org.test: invited as Member (inv-")
    assert "; token (shown once): " in lines[0]  # no SMTP configured: the token comes back (R9)
    assert lines[1].startswith("Carol@inv-org.test: invited as Member")
    assert lines[2].startswith("revision ")

    again = admin(
        server,
        "invite",
        "--org",
        "inv-org",
        "--actor",
        "user:ivy",
        "--role",
        "Admin",
        "bob@inv-org.test",
        "ivy@inv-org.test",
        "dave@inv-org.test",
    )
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()  # R7: per address, not a failure of the whole call
    assert lines[0] == "bob@inv-org.test: already invited (a pending invitation exists)"
    assert lines[1] == "ivy@inv-org.test: already a member"
    assert lines[2].startswith("dave@inv-org.test: invited as Admin")


def test_invite_refusals_exit_2(server: Served) -> None:
    bootstrap(server, "inv-refusals")
    bad = admin(
        server, "invite", "--org", "inv-refusals", "--actor", "user:alice", "not-an-address", "erin@inv-refusals.test"
    )
    assert bad.returncode == 2
    assert "not-an-address: error: emails[0]:" in bad.stderr
    assert "erin@inv-refusals.test: invited as Member" in bad.stdout  # the good address still went out

    outsider = admin(server, "invite", "--org", "inv-refusals", "--actor", "user:mallory", "x@y.test")
    assert outsider.returncode == 2
    assert outsider.stderr.startswith("error: NOT_FOUND:")
    unknown_role = admin(
        server, "invite", "--org", "inv-refusals", "--actor", "user:alice", "--role", "Viewer", "x@y.test"
    )
    assert unknown_role.returncode == 2
    assert unknown_role.stderr.startswith("error: INVALID_ARGUMENT: org_role:")
    usage = run("invite", "--org", "inv-refusals")  # no address
    assert usage.returncode == 2
    assert "EMAIL" in usage.stderr


def test_no_server_is_exit_2(tmp_path: Path) -> None:
    r = run(
        "org",
        "bootstrap",
        "--handle",
        "a",
        "--name",
        "A",
        "--admin-user",
        "u",
        "--server",
        "127.0.0.1:9",
        "--timeout",
        "2",
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: UNAVAILABLE:")
