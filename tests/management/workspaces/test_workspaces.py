"""Workspaces through gRPC: R10, R15, R17, R19, cross-organization NOT_FOUND, paging."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from tests.conftest import settings_for
from tests.management.support import As, add_member, add_service_account, allowed, code, create_org, error, head

C = grpc.StatusCode


async def test_create_list_get_workspace(app: App, channel) -> None:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    r = await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", handle="prod"))
    assert r.workspace.id.startswith("ws-")
    assert r.workspace.name == "prod"
    assert r.revision > 0
    assert r.workspace.default_role == ""
    got = await alice.workspaces.GetWorkspace(pb.GetWorkspaceRequest(workspace=r.workspace.id))
    assert got.workspace == r.workspace
    # Read-your-writes: the Admin holds every scope of the new workspace at once (R2a).
    assert await allowed(channel, "user:alice", "manage_flows", workspace=r.workspace.id)


async def test_r15_handle_unique_in_organization(app: App, channel) -> None:
    await create_org(channel)
    await create_org(channel, "globex", "gina")
    alice, gina = As.of(channel, "user:alice"), As.of(channel, "user:gina")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="a1", handle="prod"))
    assert (
        await code(
            alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="a2", handle="prod"))
        )
        == C.ALREADY_EXISTS
    )
    # The same handle in another organization is fine.
    await gina.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="globex", id="g1", handle="prod"))


async def test_list_workspaces_pages(app: App, channel) -> None:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    handles = [f"ws{i:02d}" for i in range(7)]
    for h in reversed(handles):
        await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", handle=h))
    seen, token = [], ""
    while True:
        r = await alice.workspaces.ListWorkspaces(
            pb.ListWorkspacesRequest(organization="acme", page_size=3, page_token=token)
        )
        assert len(r.workspaces) <= 3
        seen += [w.handle for w in r.workspaces]
        token = r.next_page_token
        if not token:
            break
    assert seen == handles
    bad = await error(
        alice.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme", page_token="not a token"))
    )
    assert bad.code() == C.INVALID_ARGUMENT
    assert "page_token" in (bad.details() or "")
    bad = await error(alice.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme", page_size=1001)))
    assert bad.code() == C.INVALID_ARGUMENT
    assert "page_size" in (bad.details() or "")


async def test_member_cannot_create_or_delete_workspaces(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice, bob = As.of(channel, "user:alice"), As.of(channel, "user:bob")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    assert (
        await code(bob.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", handle="x")))
        == C.PERMISSION_DENIED
    )
    assert await code(bob.workspaces.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace="w"))) == C.PERMISSION_DENIED
    # Members may list and read (read:workspace) the workspaces they can access (R30).
    r = await bob.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme"))
    assert [w.id for w in r.workspaces] == []
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:bob", role="Viewer")
    )
    r = await bob.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme"))
    assert [w.id for w in r.workspaces] == ["w"]


async def test_other_organization_is_not_found(app: App, channel) -> None:
    await create_org(channel)
    await create_org(channel, "globex", "gina")
    alice, gina = As.of(channel, "user:alice"), As.of(channel, "user:gina")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    for call in (
        lambda: gina.workspaces.GetWorkspace(pb.GetWorkspaceRequest(workspace="w")),
        lambda: gina.workspaces.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace="w")),
        lambda: gina.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w", role="Viewer")),
        lambda: gina.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme")),
        lambda: gina.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", handle="x")),
        lambda: gina.orgs.GetOrganization(pb.GetOrganizationRequest(organization="acme")),
        lambda: gina.members.ListMembers(pb.ListMembersRequest(organization="acme")),
        lambda: gina.access.ListWorkspaceAccess(pb.ListWorkspaceAccessRequest(workspace="w")),
        lambda: gina.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:gina", role="Owner")
        ),
        lambda: gina.roles.ListRoles(pb.ListRolesRequest(organization="acme")),
        lambda: gina.audit.ListAuditEvents(pb.ListAuditEventsRequest(organization="acme")),
    ):  # lazily: a grpc.aio call starts when created
        assert await code(call()) == C.NOT_FOUND
    # The same answer as for something that does not exist at all.
    assert await code(gina.workspaces.GetWorkspace(pb.GetWorkspaceRequest(workspace="nope"))) == C.NOT_FOUND


async def test_r17_default_role_incl_no_access(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    await add_service_account(app, "acme", "robot")
    alice = As.of(channel, "user:alice")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    assert not await allowed(channel, "user:bob", "see_flows", workspace="w")
    r = await alice.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w", role="Viewer"))
    assert r.workspace.default_role == "Viewer"
    assert await allowed(channel, "user:bob", "see_flows", workspace="w")
    assert not await allowed(channel, "service_account:robot", "see_flows", workspace="w")
    # Only workspace roles.
    bad = await error(alice.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w", role="Admin")))
    assert bad.code() == C.INVALID_ARGUMENT
    assert "role" in (bad.details() or "")
    await alice.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w", role=""))
    assert not await allowed(channel, "user:bob", "see_flows", workspace="w")


async def test_r17_only_admin_or_owner_sets_default_role(app: App, channel) -> None:
    await create_org(channel)
    for user in ("owner", "dev"):
        await add_member(app, "acme", user)
    alice = As.of(channel, "user:alice")
    for ws in ("w1", "w2"):
        await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id=ws, handle=ws))
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w1", subject="user:owner", role="Owner")
    )
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w1", subject="user:dev", role="Developer")
    )
    owner, dev = As.of(channel, "user:owner"), As.of(channel, "user:dev")
    assert await code(owner.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w1", role="Runner"))) == C.OK
    assert (
        await code(owner.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w2", role="Runner")))
        == C.PERMISSION_DENIED
    )
    assert (
        await code(dev.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w1", role="Viewer")))
        == C.PERMISSION_DENIED
    )


async def test_r19_deleting_workspace_removes_grants(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    await add_service_account(app, "acme", "robot")
    alice = As.of(channel, "user:alice")
    await alice.workspaces.CreateWorkspace(
        pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w", default_role="Viewer")
    )
    for subject in ("user:bob", "service_account:robot"):
        await alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace="w", subject=subject, role="Developer")
        )
        assert await allowed(channel, subject, "manage_flows", workspace="w")
    r = await alice.workspaces.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace="w"))
    assert r.revision > 0
    for subject in ("user:bob", "service_account:robot", "user:alice"):
        assert not await allowed(channel, subject, "see_flows", workspace="w")
    assert app.db is not None
    with app.db.read() as s:
        from sqlalchemy import func, select

        from orgauthz.store.models import WorkspaceGrant

        assert s.scalar(select(func.count()).select_from(WorkspaceGrant)) == 0
    # A new workspace with the same id starts with nobody's grants.
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    assert not await allowed(channel, "user:bob", "see_flows", workspace="w")


async def test_r10_workspace_limit(app: App, channel) -> None:
    await create_org(channel, max_workspaces=2)
    alice = As.of(channel, "user:alice")
    for h in ("a", "b"):
        await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", handle=h))
    before = head(app)
    assert (
        await code(alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", handle="c")))
        == C.RESOURCE_EXHAUSTED
    )
    assert head(app) == before


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_r10_workspace_limit_under_concurrency(store_url: str) -> None:
    app = App(settings_for(store_url))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            await create_org(channel, max_workspaces=5)
            alice = As.of(channel, "user:alice")
            codes = await asyncio.gather(
                *(
                    code(
                        alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", handle=f"w{i}"))
                    )
                    for i in range(24)
                )
            )
            assert codes.count(C.OK) == 5
            assert codes.count(C.RESOURCE_EXHAUSTED) == 19
            r = await alice.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme"))
            assert len(r.workspaces) == 5
    finally:
        await app.stop(0)
