"""``orgauthz policy lint``: a sound catalog is clean; each seeded break is found at its line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from orgauthz.cli import main
from orgauthz.domain import lines as L
from orgauthz.domain.policy import DEFAULT_POLICY_DIR, PolicySet, load_policy
from orgauthz.tools.policy_lint import probe_mismatches
from tests.policy.conftest import edit


def test_shipped_catalog_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", str(DEFAULT_POLICY_DIR)]) == 0
    assert "clean" in capsys.readouterr().out


# (id, file, old text, new text, offset of the bad line from the edit, expected message)
BREAKS = [
    (
        "R21 unknown scope in a role",
        "roles.yaml",
        "      - see_webhooks\n",
        "      - see_webhookz\n",
        0,
        "role 'Viewer' names unknown scope 'see_webhookz'",
    ),
    (
        "R21 include cycle",
        "scopes.yaml",
        "    includes: [see_automations]\n",
        "    includes: [see_automations, manage_automations]\n",
        0,
        "scope includes form a cycle",
    ),
    (
        "R20 inheritance cycle",
        "roles.yaml",
        "    inherits: Viewer\n",
        "    inherits: Owner\n",
        0,
        "role inheritance forms a cycle",
    ),
    (
        "R20 unknown inherited role",
        "roles.yaml",
        "    inherits: Runner\n",
        "    inherits: Runer\n",
        0,
        "role 'Developer' inherits unknown workspace role 'Runer'",
    ),
    (
        "R11 Member inherits Admin",
        "roles.yaml",
        "    description: A collaborator; sees the organization, works where given access.\n",
        "    description: A collaborator; sees the organization, works where given access.\n    inherits: Admin\n",
        1,
        "R11: Member inherits an Admin role",
    ),
    (
        "R8 Member may change member roles",
        "roles.yaml",
        "      - read:account_role\n",
        "      - read:account_role\n      - update:account_membership\n",
        1,
        "R8: only Owner and Admin may hold update:account_membership",
    ),
    (
        "R21 an invented id not marked",
        "scopes.yaml",
        "  manage_acls:\n",
        "  see_audit_trail:\n    description: See the workspace's audit trail.\n  manage_acls:\n",
        0,
        "R21: 'see_audit_trail' is not one of Prefect's ids: use Prefect's, or mark it origin: orgauthz",
    ),
    (
        "R21 Prefect's id marked as invented",
        "scopes.yaml",
        "  manage_acls:\n",
        "  manage_acls:\n    origin: orgauthz\n",
        0,
        "R21: 'manage_acls' is Prefect's own id: it is not origin: orgauthz",
    ),
    (
        "R24 Admin may bypass SSO",
        "roles.yaml",
        '    scopes: ["*"]\n    except: [bypass:sso]\n',
        '    scopes: ["*"]\n',
        0,
        "R24: only Owner may hold bypass:sso; Admin does",
    ),
    (
        "R24 Member may bypass SSO",
        "roles.yaml",
        "      - read:account_role\n",
        "      - read:account_role\n      - bypass:sso\n",
        1,
        "R24: only Owner may hold bypass:sso; Member does",
    ),
    (
        "R16 Runner manages workspace access",
        "roles.yaml",
        "      - run_deployments\n",
        "      - run_deployments\n      - manage_workspace_users\n",
        1,
        "R16: only Owner",
    ),
    ("duplicate role", "roles.yaml", "  Worker:\n", "  Owner:\n", 0, "duplicate key 'Owner'"),
    (
        "misspelt key",
        "roles.yaml",
        "    inherits: Developer\n",
        "    inherit: Developer\n",
        0,
        "'Owner' has unknown key 'inherit'",
    ),
    (
        "R17 matcher gives service accounts the default role",
        "model.conf",
        '(keyMatch(r.sub, "user:*") && g(r.sub, "member", r.org) && g3(r.dom, p.sub))',
        '(g(r.sub, "member", r.org) && g3(r.dom, p.sub))',
        0,
        "the matcher grants service_account:bot",
    ),
    (
        "R26 matcher ignores ACL listings",
        "model.conf",
        " || g4(r.res, r.sub, r.org)",
        "",
        0,
        "the matcher denies user:worker-user in ws:ws-default-viewer on deployment:listed run_deployments",
    ),
    (
        "R26 matcher ignores ACLs",
        "model.conf",
        '!g4(r.res, "acl", r.org)',
        '!g4(r.res, "acl", r.org) || r.res != ""',
        0,
        "the matcher grants user:member in ws:ws-default-viewer on deployment:listed see_deployments",
    ),
    (
        "R26 matcher ignores grant entries",
        "model.conf",
        ' || r.res != "" && g5(r.res, r.sub, r.org) && g(r.sub, "member", r.org)',
        "",
        0,
        "the matcher denies user:member in ws:ws-no-default on block:granted see_blocks, see_secret_blocks",
    ),
    (
        "R26 a grant entry reaches outside the organization",
        "model.conf",
        'g5(r.res, r.sub, r.org) && g(r.sub, "member", r.org)',
        "g5(r.res, r.sub, r.org)",
        0,
        "the matcher grants user:outsider in ws:ws-no-default on block:granted",
    ),
    (
        "R26 workspace Owners lose access to objects",
        "model.conf",
        ' || g(r.sub, "role:Owner", r.dom)',
        "",
        0,
        "the matcher denies user:owner in ws:ws-no-default on deployment:delegated manage_deployments",
    ),
    (
        "R26 a service account keeps objects through the default role",
        "model.conf",
        '(keyMatch(r.sub, "user:*") && g(r.sub, "member", r.org) && g3(r.dom, "role:Owner"))',
        'g3(r.dom, "role:Owner")',
        0,
        "the matcher grants service_account:bot in ws:ws-default-owner on block:kept manage_blocks",
    ),
    (
        "effect other than allow-any",
        "model.conf",
        "e = some(where (p.eft == allow))",
        "e = !some(where (p.eft == deny))",
        0,
        "the effect must be some(where (p.eft == allow))",
    ),
    (
        "matcher the engine cannot compile",
        "model.conf",
        "m = g2(p.obj, r.obj) && ",
        'm = g2(p.obj, r.obj) && r.dom in ("ws:a", "ws:b") && ',
        0,
        "the matcher cannot be compiled at `r.dom in ('ws:a', 'ws:b')`",
    ),
    # routes.yaml: Envoy's external authorization (orgauthz.domain.routes)
    (
        "route with an unknown scope",
        "routes.yaml",
        "    scope: run_deployments\n",
        "    scope: run_deploymentz\n",
        0,
        "unknown workspace scope 'run_deploymentz'",
    ),
    (
        "route object naming a variable the path lacks",
        "routes.yaml",
        '    object: "work_pool:{name}"\n',
        '    object: "work_pool:{pool}"\n',
        0,
        "object uses {pool}, which is not a variable of the path",
    ),
    (
        "route with a duplicate key",
        "routes.yaml",
        "    scope: see_flows\n",
        '    scope: see_flows\n    workspace: "{workspace}"\n',
        1,
        "duplicate key 'workspace'",
    ),
    (
        "route with an unknown object kind",
        "routes.yaml",
        '    object: "block:{id}"\n',
        '    object: "secret:{id}"\n',
        0,
        "unknown object kind 'secret'",
    ),
    (
        "route with an unknown method",
        "routes.yaml",
        "  - method: PATCH\n",
        "  - method: FETCH\n",
        0,
        "unknown method 'FETCH'",
    ),
    (
        "route with a partial-segment variable",
        "routes.yaml",
        "    path: /api/accounts/{org}/workspaces/{ws}/flow_runs/filter\n",
        "    path: /api/accounts/{org}/workspaces/ws-{ws}/flow_runs/filter\n",
        0,
        "segment 'ws-{ws}' is neither a literal nor a whole {variable}",
    ),
    (
        "overlapping routes",
        "routes.yaml",
        "    path: /api/accounts/{org}/workspaces/{ws}/flow_runs/filter\n",
        "    path: /api/accounts/{org}/workspaces/{ws}/deployments/{id}/create_flow_run\n",
        -1,
        "overlaps POST /api/accounts/{org}/workspaces/{ws}/deployments/{id}/create_flow_run",
    ),
    (
        "route with an unknown key",
        "routes.yaml",
        "    description: list flow runs\n",
        "    description: list flow runs\n    organisation: acme\n",
        1,
        "unknown key 'organisation'",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "offset", "message"), [pytest.param(*b[1:], id=b[0]) for b in BREAKS])
def test_seeded_break_fails_lint_at_its_line(
    catalog: Path, capsys: pytest.CaptureFixture[str], file: str, old: str, new: str, offset: int, message: str
) -> None:
    line = edit(catalog / file, old, new) + offset
    assert main(["policy", "lint", str(catalog)]) == 1
    out = capsys.readouterr().out
    expected = f"{catalog / file}:{line}: "
    assert any(row.startswith(expected) and message in row for row in out.splitlines()), (expected, message, out)


def test_r20_broken_ladder_names_the_upper_role(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Runner stops inheriting Viewer: Runner no longer holds everything Viewer holds.
    edit(catalog / "roles.yaml", "    inherits: Viewer\n", "")
    line = (catalog / "roles.yaml").read_text().splitlines().index("  Runner:") + 1
    assert main(["policy", "lint", str(catalog)]) == 1
    out = capsys.readouterr().out
    assert f"roles.yaml:{line}: R20: Runner must hold everything Viewer holds" in out, out


def test_r27_lines_without_delegation_fail_the_probe(catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The deployment's own (empty) ACL decides instead of its work pool's.
    def own_acl_only(
        policy: PolicySet,
        org_id: str,
        workspace_id: str,
        obj: str,
        acls: L.Acls,
        pools: Mapping[tuple[str, str], str],
    ) -> list[L.Line]:
        return real(policy, org_id, workspace_id, obj, acls, {})

    real = L.object_lines
    monkeypatch.setattr(L, "object_lines", own_acl_only)
    found = probe_mismatches(load_policy(catalog))
    assert any(
        m.startswith("the matcher denies user:worker-user in ws:ws-no-default on deployment:delegated see_deployments")
        and "R27" in m
        for m in found
    ), found


def test_route_workspace_from_a_variable_the_path_lacks(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = edit(
        catalog / "routes.yaml",
        '    workspace: "{ws}"\n    scope: see_flows\n',
        '    workspace: "{w}"\n    scope: see_flows\n',
    )
    assert main(["policy", "lint", str(catalog)]) == 1
    out = capsys.readouterr().out
    assert (
        f"routes.yaml:{line}: POST /api/accounts/{{org}}/workspaces/{{ws}}/flow_runs/filter: workspace uses {{w}}"
        in out
    ), out


def test_missing_route_table_is_not_a_finding(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The route table serves Envoy's external authorization only; a catalog may go without one.
    (catalog / "routes.yaml").unlink()
    assert main(["policy", "lint", str(catalog)]) == 0, capsys.readouterr().out
