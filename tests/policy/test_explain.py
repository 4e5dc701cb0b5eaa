"""``orgauthz explain``: every granting path for an allow, the missing piece for a deny."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from orgauthz.api.server import App
from orgauthz.cli import main
from orgauthz.domain.policy import PolicySet
from orgauthz.store.db import open_store
from tests.support.orgs import seed

DEMO = yaml.safe_load((Path(__file__).parents[2] / "examples" / "demo.yaml").read_text())


@pytest.fixture
def demo_url(tmp_path: Path, sqlite_template: Path, policy: PolicySet) -> str:
    path = tmp_path / "demo.db"
    path.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{path}"
    db = open_store(url)
    seed(db, policy, DEMO)
    db.dispose()
    return url


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["explain", *args])
    return code, capsys.readouterr().out.splitlines()


def test_allow_names_every_path_and_what_each_inherits(demo_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(capsys, "user:bob", "acme-prod", "see_flows", "--database-url", demo_url)
    assert code == 0
    assert out[0] == "ALLOWED: user:bob may use see_flows in workspace acme-prod"
    # R18: the direct role and the default role both grant it; Developer gets it from Viewer (R20).
    assert "  - workspace role Developer; see_flows inherited from Viewer" in out
    assert "  - default workspace role Viewer" in out


def test_allow_through_a_custom_role_names_the_built_in_it_inherits(
    demo_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = explain(capsys, "service_account:ci-bot", "acme-prod", "run_deployments", "--database-url", demo_url)
    assert code == 0
    assert (
        "  - workspace role acme-deployer; custom role, inherits Runner; run_deployments inherited from Runner" in out
    ), out


def test_allow_by_organization_owner(demo_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(capsys, "user:alice", "acme-sandbox", "manage_workspace_users", "--database-url", demo_url)
    assert code == 0
    assert "  - organization Owner" in out


def test_deny_names_what_is_held_and_the_nearest_missing_role(
    demo_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = explain(capsys, "user:carol", "acme-prod", "manage_flows", "--database-url", demo_url)
    assert code == 1
    assert out[0] == "DENIED: user:carol may not use manage_flows in workspace acme-prod"
    assert "  - held here: default workspace role Viewer" in out
    assert "  - nearest: workspace role Developer grants manage_flows" in out


def test_deny_for_a_service_account_mentions_r17(demo_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(capsys, "service_account:ci-bot", "acme-prod", "manage_flows", "--database-url", demo_url)
    assert code == 1
    assert "  - the default workspace role never applies to service accounts (R17)" in out


def test_organization_deny_names_admin(demo_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(
        capsys, "user:bob", "acme", "update:account_membership", "--organization", "--database-url", demo_url
    )
    assert code == 1
    assert "  - organization role Member does not grant update:account_membership" in out
    assert "  - nearest: organization role Admin grants update:account_membership" in out


async def test_against_a_server_explain_uses_check(
    app: App, policy: PolicySet, capsys: pytest.CaptureFixture[str]
) -> None:
    assert app.db is not None
    rev = str(seed(app.db, policy, DEMO))
    server = f"127.0.0.1:{app.port}"
    # The command uses a blocking channel: run it off the event loop the server runs on.
    code = await asyncio.to_thread(
        main, ["explain", "user:bob", "acme-prod", "see_flows", "--server", server, "--min-revision", rev]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert "  - workspace role Developer; inherited from Viewer" in out, out
    assert "  - default workspace role Viewer" in out
    code = await asyncio.to_thread(
        main, ["explain", "user:carol", "acme-prod", "manage_flows", "--server", server, "--min-revision", rev]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert "  - nearest: workspace role Developer grants manage_flows" in out, out
