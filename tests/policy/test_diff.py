"""``orgauthz policy diff``: grants and removals on effective scopes, through inheritance."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orgauthz.cli import main
from tests.policy.conftest import edit

NEW_SCOPE = """  see_audit_trail:
    description: See the workspace's audit trail.
"""


def _add_scope_to_viewer(catalog: Path) -> None:
    edit(catalog / "scopes.yaml", "\norganization_permissions:\n", NEW_SCOPE + "\norganization_permissions:\n")
    edit(
        catalog / "roles.yaml",
        "      - see_workspace_service_accounts\n  Runner:\n",
        "      - see_workspace_service_accounts\n      - see_audit_trail\n  Runner:\n",
    )


def _granted(out: str) -> dict[str, str]:
    """``Role/level`` -> its `granted:` line, from the text report."""
    rows, role = {}, ""
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("    ") and "(" in line:
            role = f"{line.split()[0]}/{line.split('(')[1].split()[0]}"
        elif line.strip().startswith("granted:"):
            rows[role] = line.strip()
    return rows


def test_r20_scope_added_to_viewer_is_granted_to_every_role_inheriting_it(
    catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base"
    subprocess.run(["cp", "-r", str(catalog), str(base)], check=True)
    _add_scope_to_viewer(catalog)
    assert main(["policy", "diff", str(base), str(catalog)]) == 1
    out = capsys.readouterr().out
    granted = _granted(out)
    assert granted["Viewer/workspace"] == "granted: +see_audit_trail"
    for role, parent in (("Runner", "Viewer"), ("Developer", "Viewer"), ("Owner", "Viewer")):
        assert granted[f"{role}/workspace"] == f"granted: +see_audit_trail (via {parent})", out
    # R2a: `*` takes every new scope
    assert granted["Owner/organization"] == granted["Admin/organization"] == "granted: +see_audit_trail"
    assert "Worker/workspace" not in granted
    assert "Member/organization" not in granted
    assert "+ workspace scope see_audit_trail" in out
    # The fixture's custom role inheriting Runner (policies/tests/r22_custom_roles.yaml) follows it (R22).
    assert "r22-deployer" in out
    assert "inherits Runner): +see_audit_trail" in out
    assert "GRANTS ACCESS" in out


def test_markdown_report_is_a_table_for_a_pull_request(
    catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base"
    subprocess.run(["cp", "-r", str(catalog), str(base)], check=True)
    _add_scope_to_viewer(catalog)
    assert main(["policy", "diff", str(base), str(catalog), "--format", "markdown"]) == 1
    out = capsys.readouterr().out
    assert "| Role | Level | Granted | Removed |" in out
    assert "| **Runner** | workspace | `see_audit_trail` via Viewer | — |" in out


def test_removal_only_exits_0_and_says_so(catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    subprocess.run(["cp", "-r", str(catalog), str(base)], check=True)
    edit(catalog / "roles.yaml", "      - manage_events\n", "")
    assert main(["policy", "diff", str(base), str(catalog)]) == 0
    out = capsys.readouterr().out
    assert "removed: -manage_events" in out
    assert "removed: -manage_events (via Developer)" in out
    assert "Removes access only" in out


def test_git_refs_compare_committed_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, catalog: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["cp", "-r", str(catalog), str(repo / "policies")], check=True)

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
            cwd=repo,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", "policies")
    git("commit", "-q", "-m", "base")
    _add_scope_to_viewer(repo / "policies")
    git("commit", "-q", "-am", "Viewer sees the audit trail")
    monkeypatch.chdir(repo)
    assert main(["policy", "diff", "HEAD~1", "HEAD"]) == 1
    assert "granted: +see_audit_trail" in capsys.readouterr().out
    assert main(["policy", "diff", "HEAD"]) == 0  # the working tree is HEAD
    assert "No effective change" in capsys.readouterr().out


def test_model_change_reports_the_decisions_it_changes(
    catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base"
    subprocess.run(["cp", "-r", str(catalog), str(base)], check=True)
    edit(
        catalog / "model.conf",
        '(keyMatch(r.sub, "user:*") && g(r.sub, "member", r.org) && g3(r.dom, p.sub))',
        '(g(r.sub, "member", r.org) && g3(r.dom, p.sub))',
    )
    assert main(["policy", "diff", str(base), str(catalog)]) == 1
    out = capsys.readouterr().out
    assert "model.conf changed" in out
    assert "+ service_account:bot may now use see_automations in ws:ws-default-viewer" in out


def test_the_object_acl_model_decides_as_the_model_before_it_without_objects(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """3036422 is the last commit before object ACLs (its request has no ``res``): without an
    object, the current model changes no decision on the probe organization (R26)."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    assert main(["policy", "diff", "3036422", "HEAD"]) == 0
    out = capsys.readouterr().out
    assert "model.conf changed" in out
    assert "no decision changed" in out
