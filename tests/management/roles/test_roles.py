"""Roles through gRPC: R20-R22 (custom roles, inheritance, in use) and the scope catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import yaml

from orgauthz.api.server import App
from orgauthz.domain.policy import DEFAULT_POLICY_DIR
from orgauthz.v1 import management_pb2 as pb
from tests.conftest import settings_for
from tests.management.support import As, add_member, allowed, code, create_org, error, head

C = grpc.StatusCode


async def test_list_roles_builtin_and_custom(app: App, channel) -> None:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme", id="auditor", name="Auditor", level="workspace", scopes=["see_flows", "see_events"]
        )
    )
    r = await alice.roles.ListRoles(pb.ListRolesRequest(organization="acme"))
    ids = [(x.id, x.level) for x in r.roles]
    assert ids == [
        ("Admin", "organization"),
        ("Developer", "workspace"),
        ("Member", "organization"),
        ("Owner", "organization"),  # R1, R24: an Owner at each level, told apart by level
        ("Owner", "workspace"),
        ("Runner", "workspace"),
        ("Viewer", "workspace"),
        ("Worker", "workspace"),
        ("auditor", "workspace"),
    ]
    owner = next(x for x in r.roles if x.id == "Owner" and x.level == "organization")
    assert "bypass:sso" in owner.effective_scopes
    admin = next(x for x in r.roles if x.id == "Admin")
    assert "bypass:sso" not in admin.effective_scopes
    assert "delete:account" in admin.effective_scopes
    runner = next(x for x in r.roles if x.id == "Runner")
    assert runner.builtin
    assert runner.inherits == "Viewer"
    assert runner.scopes == ["run_deployments"]
    assert "see_flows" in runner.effective_scopes
    auditor = r.roles[-1]
    assert not auditor.builtin
    assert auditor.scopes == ["see_events", "see_flows"]
    paged, token = [], ""
    while True:
        p = await alice.roles.ListRoles(pb.ListRolesRequest(organization="acme", page_size=3, page_token=token))
        paged += [(x.id, x.level) for x in p.roles]
        if not (token := p.next_page_token):
            break
    assert paged == ids
    ws_only = await alice.roles.ListRoles(pb.ListRolesRequest(organization="acme", level="organization"))
    assert [x.id for x in ws_only.roles] == ["Admin", "Member", "Owner"]


async def test_r22_custom_role_validation(app: App, channel) -> None:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    before = head(app)
    cases = [
        (
            pb.CreateRoleRequest(organization="acme", name="x", level="workspace", scopes=["create:workspace"]),
            "scopes[0]",
        ),
        (pb.CreateRoleRequest(organization="acme", name="x", level="organization", scopes=["see_flows"]), "scopes[0]"),
        (pb.CreateRoleRequest(organization="acme", name="x", level="organization", inherits="Admin"), "inherits"),
        (pb.CreateRoleRequest(organization="acme", name="x", level="workspace", inherits="Member"), "inherits"),
        (
            pb.CreateRoleRequest(organization="acme", id="Viewer", name="x", level="workspace", scopes=["see_flows"]),
            "id",
        ),
        (pb.CreateRoleRequest(organization="acme", name="x", level="team", scopes=["see_flows"]), "level"),
        (pb.CreateRoleRequest(organization="acme", name="x", level="workspace"), "scopes"),
        (pb.CreateRoleRequest(organization="acme", name="x", level="workspace", scopes=["no_such_scope"]), "scopes[0]"),
    ]
    for request, field in cases:
        e = await error(alice.roles.CreateRole(request))
        assert e.code() == C.INVALID_ARGUMENT, request
        assert (e.details() or "").startswith(f"{field}:"), (field, e.details())
    assert head(app) == before


async def test_r22_custom_role_in_use_cannot_be_deleted(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice = As.of(channel, "user:alice")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme",
            id="ops",
            name="Ops",
            level="workspace",
            inherits="Runner",
            scopes=["manage_work_pools"],
        )
    )
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme",
            id="lead",
            name="Lead",
            level="organization",
            inherits="Member",
            scopes=["read:audit_event"],
        )
    )
    # Calls are made lazily (a grpc.aio call starts as soon as it is created).
    uses = [
        (
            lambda: alice.access.GrantWorkspaceAccess(
                pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:bob", role="ops")
            ),
            lambda: alice.access.RevokeWorkspaceAccess(
                pb.RevokeWorkspaceAccessRequest(workspace="w", subject="user:bob")
            ),
            "ops",
        ),
        (
            lambda: alice.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w", role="ops")),
            lambda: alice.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w", role="")),
            "ops",
        ),
        (
            lambda: alice.members.ChangeMemberRole(
                pb.ChangeMemberRoleRequest(organization="acme", user_id="bob", role="lead")
            ),
            lambda: alice.members.ChangeMemberRole(
                pb.ChangeMemberRoleRequest(organization="acme", user_id="bob", role="Member")
            ),
            "lead",
        ),
    ]
    for use, unuse, role in uses:
        await use()
        before = head(app)
        e = await error(alice.roles.DeleteRole(pb.DeleteRoleRequest(organization="acme", role=role)))
        assert e.code() == C.FAILED_PRECONDITION
        assert "in use" in (e.details() or "")
        assert head(app) == before
        await unuse()
    for role in ("ops", "lead"):
        r = await alice.roles.DeleteRole(pb.DeleteRoleRequest(organization="acme", role=role))
        assert r.revision > 0
    assert await code(alice.roles.DeleteRole(pb.DeleteRoleRequest(organization="acme", role="ops"))) == C.NOT_FOUND
    assert (
        await code(alice.roles.DeleteRole(pb.DeleteRoleRequest(organization="acme", role="Viewer")))
        == C.INVALID_ARGUMENT
    )


async def test_r22_update_custom_role_applies_at_once(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice, bob = As.of(channel, "user:alice"), As.of(channel, "user:bob")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(organization="acme", id="ops", name="Ops", level="workspace", scopes=["see_flows"])
    )
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:bob", role="ops")
    )
    assert not await allowed(channel, "user:bob", "manage_variables", workspace="w")
    r = await alice.roles.UpdateRole(
        pb.UpdateRoleRequest(organization="acme", role="ops", name="Operations", scopes=["manage_variables"])
    )
    assert r.role.name == "Operations"
    assert r.role.scopes == ["manage_variables"]
    assert await allowed(channel, "user:bob", "manage_variables", workspace="w")
    assert not await allowed(channel, "user:bob", "see_flows", workspace="w")
    # Members may read roles but not change them; built-ins are changed in policies/ only (R23).
    assert (
        await code(
            bob.roles.UpdateRole(pb.UpdateRoleRequest(organization="acme", role="ops", name="x", scopes=["see_flows"]))
        )
        == C.PERMISSION_DENIED
    )
    assert (
        await code(
            alice.roles.UpdateRole(
                pb.UpdateRoleRequest(organization="acme", role="Viewer", name="x", scopes=["see_flows"])
            )
        )
        == C.INVALID_ARGUMENT
    )
    assert await code(bob.roles.ListRoles(pb.ListRolesRequest(organization="acme"))) == C.OK


async def test_r22_inherited_scopes_follow_builtin(store_url: str, tmp_path: Path) -> None:
    """A custom role inheriting Runner gains what Runner gains when policies/ changes."""
    policies = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICY_DIR, policies)

    async def run(*, setup: bool = False) -> bool:
        """Starts a server on ``policies``; whether bob may manage automations in w."""
        app = App(settings_for(store_url, policy_dir=policies))
        await app.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                alice = As.of(channel, "user:alice")
                if setup:
                    await create_org(channel)
                    await add_member(app, "acme", "bob")
                    await alice.workspaces.CreateWorkspace(
                        pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w")
                    )
                    await alice.roles.CreateRole(
                        pb.CreateRoleRequest(
                            organization="acme",
                            id="ops",
                            name="Ops",
                            level="workspace",
                            inherits="Runner",
                            scopes=["manage_variables"],
                        )
                    )
                    await alice.access.GrantWorkspaceAccess(
                        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:bob", role="ops")
                    )
                    assert await allowed(channel, "user:bob", "run_deployments", workspace="w")  # inherited
                    assert await allowed(channel, "user:bob", "manage_variables", workspace="w")  # own
                    # Inherited scopes cannot be removed: an update replaces own scopes only.
                    await alice.roles.UpdateRole(
                        pb.UpdateRoleRequest(organization="acme", role="ops", name="Ops", scopes=["see_artifacts"])
                    )
                    assert await allowed(channel, "user:bob", "run_deployments", workspace="w")
                    assert not await allowed(channel, "user:bob", "manage_variables", workspace="w")
                return await allowed(channel, "user:bob", "manage_automations", workspace="w")
        finally:
            await app.stop(0)

    assert not await run(setup=True)
    roles = yaml.safe_load((policies / "roles.yaml").read_text())
    roles["workspace_roles"]["Runner"]["scopes"].append("manage_automations")
    (policies / "roles.yaml").write_text(yaml.safe_dump(roles))
    assert await run()


async def test_scope_catalog(app: App, channel) -> None:
    stub = As.of(channel).roles
    r = await stub.ListScopes(pb.ListScopeCatalogRequest(level="workspace", page_size=1000))
    names = {s.name: s for s in r.scopes}
    assert "run_flows" in names["manage_flows"].includes
    assert len(r.scopes) == 61  # Prefect's scope ids (R21)
    assert not r.next_page_token
    assert all(s.level == "workspace" for s in r.scopes)
    everything, token = [], ""
    while True:
        p = await stub.ListScopes(pb.ListScopeCatalogRequest(page_size=10, page_token=token))
        everything += [s.name for s in p.scopes]
        if not (token := p.next_page_token):
            break
    assert "read:audit_event" in everything
    assert len(everything) == len(set(everything)) > len(r.scopes)
