"""R30: a Member sees the workspaces it can access (a grant, or the default role), not all
of them; Owners and Admins see all. Members may list the service accounts, keys masked."""

from __future__ import annotations

import grpc

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from tests.management.support import As, add_member, code, create_org

C = grpc.StatusCode


async def _setup(app: App, channel: grpc.aio.Channel) -> tuple[As, str]:
    """The organization, and the robot service account's API key."""
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice = As.of(channel, "user:alice")
    robot = await spbg.ServiceAccountServiceStub(channel).CreateServiceAccount(
        spb.CreateServiceAccountRequest(organization="acme", id="robot", name="Robot"),
        metadata=[("x-orgauthz-actor", "user:alice")],
    )
    for ws, default in (("w1", ""), ("w2", "Viewer"), ("w3", "")):
        await alice.workspaces.CreateWorkspace(
            pb.CreateWorkspaceRequest(organization="acme", id=ws, handle=ws, default_role=default)
        )
    for subject in ("user:bob", "service_account:robot"):
        await alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace="w1", subject=subject, role="Viewer")
        )
    return alice, robot.api_key


async def _listed(who: As) -> list[str]:
    r = await who.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme", page_size=1))
    out = [w.id for w in r.workspaces]
    while r.next_page_token:  # pages count only what the caller may see
        r = await who.workspaces.ListWorkspaces(
            pb.ListWorkspacesRequest(organization="acme", page_size=1, page_token=r.next_page_token)
        )
        out += [w.id for w in r.workspaces]
    return out


async def test_r30_members_see_the_workspaces_they_can_access(app: App, channel: grpc.aio.Channel) -> None:
    alice, key = await _setup(app, channel)
    bob = As.of(channel, "user:bob")
    assert await _listed(alice) == ["w1", "w2", "w3"]  # Admins see all
    assert await _listed(bob) == ["w1", "w2"]  # a grant, the default role
    assert await _listed(As.of(channel, api_key=key)) == ["w1"]  # the default role is not theirs (R17)
    assert (await bob.workspaces.GetWorkspace(pb.GetWorkspaceRequest(workspace="w2"))).workspace.id == "w2"
    assert await code(bob.workspaces.GetWorkspace(pb.GetWorkspaceRequest(workspace="w3"))) == C.NOT_FOUND
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w3", subject="user:bob", role="Viewer")
    )
    assert await _listed(bob) == ["w1", "w2", "w3"]


async def test_r30_members_list_service_accounts_with_keys_masked(app: App, channel: grpc.aio.Channel) -> None:
    await _setup(app, channel)
    sas = spbg.ServiceAccountServiceStub(channel)
    created = await sas.CreateServiceAccount(
        spb.CreateServiceAccountRequest(organization="acme", id="deployer", name="Deployer"),
        metadata=[("x-orgauthz-actor", "user:alice")],
    )
    assert created.api_key
    r = await sas.ListServiceAccounts(
        spb.ListServiceAccountsRequest(organization="acme"), metadata=[("x-orgauthz-actor", "user:bob")]
    )
    assert [a.id for a in r.service_accounts] == ["deployer", "robot"]
    (listed,) = [a for a in r.service_accounts if a.id == "deployer"]
    assert listed.keys
    assert all(k.masked for k in listed.keys)
    assert created.api_key not in str(r)
    outsider = [("x-orgauthz-actor", "user:gina")]
    assert (
        await code(sas.ListServiceAccounts(spb.ListServiceAccountsRequest(organization="acme"), metadata=outsider))
        == C.NOT_FOUND
    )
