"""``orgauthz policy test``: the shipped suite passes on both paths; a wrong expectation fails by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgauthz.cli import main
from orgauthz.domain.policy import DEFAULT_POLICY_DIR
from orgauthz.tools.policy_test import PATHS, run_suite
from tests.policy.conftest import edit


async def test_shipped_suite_passes_on_the_engine_and_through_grpc() -> None:
    report = await run_suite(DEFAULT_POLICY_DIR)
    assert report.errors == [], report.lines()
    assert report.failures == [], report.lines()
    assert report.paths == PATHS == ("engine", "grpc")
    covered = " ".join(p.read_text() for p in (DEFAULT_POLICY_DIR / "tests").glob("*.yaml"))
    for rule in ("R2a", "R8", "R11", "R16", "R17", "R18", "R19", "R20", "R21", "R22"):
        assert f"rule: {rule}" in covered, rule
    assert report.files >= 8
    assert report.cases >= 40
    assert report.exit_code == 0


def test_wrong_expectation_fails_naming_file_and_case(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = catalog / "tests" / "r17_r18_default_role.yaml"
    # Claim that the default role reaches service accounts: the opposite of R17.
    edit(suite, "    deny: [run_deployments, see_flows]\n    scopes: []\n", "    allow: [run_deployments]\n")
    assert main(["policy", "test", str(catalog), "--file", str(suite)]) == 1
    out = capsys.readouterr().out
    name = "case 'never a service account'"
    for path in ("engine", "grpc", "grpc BatchCheck"):
        assert (
            f"r17_r18_default_role.yaml: {name} [{path}]: service_account:bot in workspace r17-runners: "
            "expected allow run_deployments, got deny" in out
        ), out
    assert "1 file(s), 7 case(s)" in out
    assert "3 failure(s)" in out


def test_wrong_scope_set_fails_with_what_is_extra_and_missing(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = catalog / "tests" / "r21_included_scopes.yaml"
    edit(
        suite,
        "    scopes: [manage_blocks, see_blocks, see_secret_blocks]\n",
        "    scopes: [manage_blocks, see_blocks]\n",
    )
    assert main(["policy", "test", str(catalog), "--file", str(suite), "--path", "grpc"]) == 1
    out = capsys.readouterr().out
    assert (
        "case 'manage_blocks brings see_secret_blocks and see_blocks with it (blocks and their secrets)' [grpc]: "
        "ListScopes(user:sec, workspace r21-ws): unexpected ['see_secret_blocks'], missing []"
    ) in out, out


def test_a_test_file_naming_an_unknown_scope_is_an_error_naming_the_case(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = catalog / "tests" / "r21_included_scopes.yaml"
    edit(suite, "    deny: [see_flows, manage_flows, manage_variables]\n", "    deny: [fly_rockets]\n")
    assert main(["policy", "test", str(catalog), "--file", str(suite)]) == 1
    out = capsys.readouterr().out
    assert (
        "case 'including is one-way — seeing never grants managing': deny: unknown workspace scope 'fly_rockets'" in out
    ), out
