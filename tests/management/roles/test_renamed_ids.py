"""R21: ids of the previous catalog are accepted for one release, as the id each became,
with a deprecation warning: in Check, BatchCheck, custom roles, import files and policy files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from orgauthz.api.server import App
from orgauthz.domain import policy as policy_module
from orgauthz.domain.policy import DEFAULT_POLICY_DIR, load_policy
from orgauthz.tools.policy_lint import lint, warnings
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import management_pb2 as pb
from tests.management.support import As, add_member, allowed, create_org

POLICY = load_policy()


def test_every_renamed_id_names_a_current_id_and_is_not_one() -> None:
    assert POLICY.renamed, "the catalog lists the previous catalog's renamed ids"
    for old, new in POLICY.renamed.items():
        assert old not in POLICY.all_scopes, old
        assert new in POLICY.all_scopes, (old, new)


async def test_check_with_a_renamed_id_is_decided_as_its_new_id(
    app: App, channel, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy_module, "_warned", set())  # the warning is logged once per process
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice = As.of(channel, "user:alice")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="ws", handle="ws"))
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="ws", subject="user:bob", role="Developer")
    )
    with caplog.at_level(logging.WARNING, logger="orgauthz.domain.policy"):
        # Developer holds manage_blocks (what manage_secret_blocks became), not manage_workspace_users.
        assert await allowed(channel, "user:bob", "manage_secret_blocks", workspace="ws")
        assert not await allowed(channel, "user:bob", "manage_workspace_default_role", workspace="ws")
        assert await allowed(channel, "user:alice", "create:service_account", organization="acme")
        assert not await allowed(channel, "user:bob", "create:service_account", organization="acme")
        batch = await alice.authz.BatchCheck(
            apb.BatchCheckRequest(
                items=[
                    apb.CheckRequest(subject="user:bob", workspace="ws", scope="write_events"),
                    apb.CheckRequest(subject="user:bob", workspace="ws", scope="submit_flow_runs"),
                    apb.CheckRequest(subject="user:bob", organization="acme", scope="read:service_account"),
                ]
            )
        )
        assert [r.allowed for r in batch.results] == [True, True, True]
    assert "deprecated scope id 'manage_secret_blocks'" in caplog.text


async def test_a_custom_role_written_with_renamed_ids_is_stored_with_the_new_ones(app: App, channel) -> None:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    r = await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme",
            id="keeper",
            name="Keeper",
            level="workspace",
            scopes=["manage_secret_blocks", "manage_blocks", "write_events"],
        )
    )
    assert list(r.role.scopes) == ["manage_blocks", "manage_events"]
    r = await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme", id="sa-admin", name="SA admin", level="organization", scopes=["create:service_account"]
        )
    )
    assert list(r.role.scopes) == ["create:bot"]


def test_a_policy_file_naming_a_renamed_id_loads_with_a_lint_warning(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_POLICY_DIR, tmp_path / "p", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    roles = tmp_path / "p" / "roles.yaml"
    roles.write_text(roles.read_text().replace("      - manage_blocks\n", "      - manage_secret_blocks\n"))
    policy = load_policy(tmp_path / "p")
    developer = policy.role("workspace", "Developer")
    assert developer is not None
    assert "manage_blocks" in developer.scopes
    assert lint(tmp_path / "p") == []
    found = [str(w) for w in warnings(tmp_path / "p")]
    assert len(found) == 1, found
    assert "Developer: 'manage_secret_blocks' is deprecated, write 'manage_blocks'" in found[0]
