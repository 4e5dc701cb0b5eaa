"""A service account acting with its own API key (x-orgauthz-api-key): R11, R16, cross-organization."""

from __future__ import annotations

import grpc

from orgauthz.api.server import App
from orgauthz.services.context import Actor
from orgauthz.v1 import management_pb2 as pb
from tests.management.support import As, code, create_org

C = grpc.StatusCode


async def _key(app: App, org: str, admin: str, sa: str) -> str:
    from orgauthz.services.service_accounts import create_service_account

    assert app.management is not None
    _, issued, _ = await create_service_account(
        app.management, Actor(f"user:{admin}"), org, sa_id=sa, name=sa, role="Member", key_ttl_s=0
    )
    return issued.api_key


async def test_r11_service_account_actor_acts_as_member(app: App, channel) -> None:
    await create_org(channel)
    await create_org(channel, "globex", "gina")
    key = await _key(app, "acme", "alice", "robot")
    alice, robot = As.of(channel, "user:alice"), As.of(channel, api_key=key)
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    # It reads what a Member reads, changes nothing an Admin must, and never sees globex.
    r = await robot.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme"))
    assert [w.id for w in r.workspaces] == []  # R30: only the workspaces it can access
    grant = pb.GrantWorkspaceAccessRequest(workspace="w", subject="service_account:robot", role="Viewer")
    await alice.access.GrantWorkspaceAccess(grant)
    r = await robot.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme"))
    assert [w.id for w in r.workspaces] == ["w"]
    create = pb.CreateWorkspaceRequest(organization="acme", handle="x")
    assert await code(robot.workspaces.CreateWorkspace(create)) == C.PERMISSION_DENIED
    promote = pb.ChangeMemberRoleRequest(organization="acme", user_id="alice", role="Member")
    assert await code(robot.members.ChangeMemberRole(promote)) == C.PERMISSION_DENIED
    other = pb.ListWorkspacesRequest(organization="globex")
    assert await code(robot.workspaces.ListWorkspaces(other)) == C.NOT_FOUND
    # Service accounts do not create organizations.
    new_org = pb.CreateOrganizationRequest(handle="robots", name="Robots", admin_user_id="robot")
    assert await code(robot.orgs.CreateOrganization(new_org)) == C.PERMISSION_DENIED
    # Given Owner of the workspace, it manages that workspace's access (R16).
    owner = pb.ChangeWorkspaceAccessRequest(workspace="w", subject="service_account:robot", role="Owner")
    await alice.access.ChangeWorkspaceAccess(owner)
    viewer = pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:alice", role="Viewer")
    assert await code(robot.access.GrantWorkspaceAccess(viewer)) == C.OK


async def test_unknown_api_key_is_unauthenticated(app: App, channel) -> None:
    await create_org(channel)
    req = pb.ListWorkspacesRequest(organization="acme")
    for key in ("pnb_" + "0" * 36, "not-a-key", "pnb_"):
        assert await code(As.of(channel, api_key=key).workspaces.ListWorkspaces(req)) == C.UNAUTHENTICATED
