"""``orgauthz policy test``: the shipped suite passes on both paths; a wrong expectation fails by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgauthz.cli import main
from orgauthz.domain.policy import DEFAULT_POLICY_DIR
from orgauthz.tools.policy_lint import display_path
from orgauthz.tools.policy_test import PATHS, run_suite
from tests.policy.conftest import edit


async def test_shipped_suite_passes_on_the_engine_and_through_grpc() -> None:
    report = await run_suite(DEFAULT_POLICY_DIR)
    assert report.errors == [], report.lines()
    assert report.failures == [], report.lines()
    assert report.paths == PATHS == ("engine", "grpc")
    covered = " ".join(p.read_text() for p in (DEFAULT_POLICY_DIR / "tests").glob("*.yaml"))
    for rule in ("R2a", "R8", "R11", "R16", "R17", "R18", "R19", "R20", "R21", "R22", "R25", "R26", "R27"):
        assert f"rule: {rule}" in covered, rule
    assert report.files >= 10
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


# -- cases about an object (R26, R27) --------------------------------------------------------

OBJECTS = "r26_r27_object_acls.yaml"


def test_a_case_object_is_asked_on_every_path(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Claim that a Developer off the on-call team may run a deployment on the production work
    pool: true of the workspace (Developer), false of the object (R27). Every path must ask
    about the object to find the claim wrong: the engine, Check and each BatchCheck item."""
    suite = catalog / "tests" / OBJECTS
    edit(
        suite,
        "    deny: [see_deployments, run_deployments, write_deployments, manage_deployments]\n"
        '    because: ["work_pool:prod-pool\'s ACL, which governs deployment:weekly (R27): user:dev is not listed"]\n',
        "    allow: [run_deployments]\n",
    )
    assert main(["policy", "test", str(catalog), "--file", str(suite)]) == 1
    out = capsys.readouterr().out
    name = "case 'a Developer off the team may not run it, though listed on the deployment itself'"
    for path in ("engine", "grpc", "grpc BatchCheck"):
        assert (
            f"{OBJECTS}: {name} [{path}]: user:dev in workspace r26-prod on deployment:weekly: "
            "expected allow run_deployments, got deny" in out
        ), out
    assert "3 failure(s)" in out, out


def test_a_case_object_reaches_list_scopes(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The Viewer granted run on one deployment lists run_deployments there (R26) and only
    there: ListScopes must be asked about the object on both paths."""
    suite = catalog / "tests" / OBJECTS
    edit(suite, "    scopes: [run_deployments, see_artifacts,", "    scopes: [see_artifacts,")
    assert main(["policy", "test", str(catalog), "--file", str(suite)]) == 1
    out = capsys.readouterr().out
    for path in ("engine", "grpc"):
        assert (
            f"case 'a grant entry lets a Viewer run exactly that deployment' [{path}]: "
            "ListScopes(user:vic, workspace r26-prod on deployment:report): unexpected ['run_deployments'], missing []"
        ) in out, out
    assert "2 failure(s)" in out, out


ADHOC = "  - name: an object without an ACL is decided by the workspace alone\n    rule: R26\n    subject: user:dev\n"


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        pytest.param(
            "    workspace: r26-prod\n    object: deployment:adhoc\n",
            "    workspace: r26-prod\n    object: flow:adhoc\n",
            "object 'flow:adhoc': unknown kind 'flow' (kinds: deployment, work_pool, block)",
            id="unknown kind",
        ),
        pytest.param(
            "    workspace: r26-prod\n    object: deployment:adhoc\n",
            "    workspace: r26-prod\n    object: adhoc\n",
            "object 'adhoc': unknown kind 'adhoc' (kinds: deployment, work_pool, block)",
            id="no kind",
        ),
        pytest.param(
            "    workspace: r26-prod\n    object: deployment:adhoc\n",
            "    workspace: r26-prod\n    object: deployment:ad hoc\n",
            "object 'deployment:ad hoc': id: must be 1-128 characters of letters, digits and ._:@-",
            id="bad id",
        ),
        pytest.param(
            "    workspace: r26-prod\n    object: deployment:adhoc\n",
            "    organization: r26\n    object: deployment:adhoc\n",
            "object 'deployment:adhoc' is named inside a workspace, not an organization",
            id="organization target",
        ),
    ],
)
def test_a_bad_case_object_is_an_error_naming_the_case(
    catalog: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, error: str
) -> None:
    suite = catalog / "tests" / OBJECTS
    edit(suite, ADHOC + old, ADHOC + new)
    assert main(["policy", "test", str(catalog), "--file", str(suite)]) == 1
    out = capsys.readouterr().out
    assert (
        f"ERROR {display_path(suite)}: case 'an object without an ACL is decided by the workspace alone': {error}"
    ) in out, out


def test_a_fixture_acl_naming_a_stranger_is_an_error_naming_its_entry(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = catalog / "tests" / OBJECTS
    report = "        - object: deployment:report\n          entries:\n"
    edit(
        suite,
        report + '            - {subject: "user:vic", level: run, grant: true}\n',
        report + '            - {subject: "user:eve", level: run}\n',
    )
    assert main(["policy", "test", str(catalog), "--file", str(suite)]) == 1
    out = capsys.readouterr().out
    assert (
        "organization fixture: organizations[0].workspaces[0].acls[3].entries[0].subject: "
        "must be a member, service account or team of the organization (R26)"
    ) in out, out


ROUTES = "ext_authz_routes.yaml"


def test_a_request_case_is_asked_through_the_route_table_and_envoy(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Flipped expectations: a route the ACL denies, and a request no route matches.
    suite = catalog / "tests" / ROUTES
    nightly = "    request: POST /api/accounts/rt/workspaces/rt-prod/deployments/nightly/create_flow_run\n"
    edit(suite, f"{nightly}    expect: deny\n", f"{nightly}    expect: allow\n")
    delete = "    request: DELETE /api/accounts/rt/workspaces/rt-prod/deployments/adhoc\n"
    edit(suite, f"{delete}    expect: deny\n", f"{delete}    expect: allow\n")
    assert main(["policy", "test", str(catalog), "--file", str(suite)]) == 1
    out = capsys.readouterr().out
    acl = "the work pool's ACL keeps a Developer outside team ops from running its deployments"
    assert f'case "{acl}" [engine]: user:dave in workspace rt-prod on deployment:nightly' in out, out
    envoy = f'case "{acl}" [grpc]: user:dave POST /api/accounts/rt/workspaces/rt-prod/deployments/nightly'
    assert envoy in out, out  # Envoy's Check on the same server
    for path in ("engine", "grpc"):
        assert (
            f"case 'a request no route matches is denied, even for the Owner' [{path}]: user:olga DELETE "
            "/api/accounts/rt/workspaces/rt-prod/deployments/adhoc: expected allow, got deny (no route matches)"
        ) in out, out


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        pytest.param("    expect: allow\n", "    expect: maybe\n", "expect must be allow or deny", id="expect"),
        pytest.param(
            "    request: POST /api/accounts/rt/workspaces/rt-prod/flow_runs/filter\n",
            "    request: POST /api/accounts/rt/workspaces/rt-prod/../flow_runs/filter\n",
            "path: has an empty, '.' or '..' segment",
            id="path",
        ),
    ],
)
def test_a_bad_request_case_is_an_error_naming_the_case(
    catalog: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, error: str
) -> None:
    suite = catalog / "tests" / ROUTES
    text = suite.read_text()
    suite.write_text(text.replace(old, new, 1))
    assert main(["policy", "test", str(catalog), "--file", str(suite)]) == 1
    out = capsys.readouterr().out
    assert f"ERROR {suite}: case " in out, out
    assert error in out, out
