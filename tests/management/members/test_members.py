"""Members and organizations through gRPC: R1, R3, R4, R8, R11."""

from __future__ import annotations

import grpc

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from tests.management.support import As, add_member, add_service_account, allowed, code, create_org, error, head

C = grpc.StatusCode


async def test_create_organization_makes_first_owner(app: App, channel) -> None:
    r = await As.of(channel).orgs.CreateOrganization(
        pb.CreateOrganizationRequest(
            handle="initech", name="Initech", admin_user_id="peter", admin_email="Peter@Initech.test"
        )
    )
    org = r.organization
    assert org.id.startswith("org-")
    assert org.limits.max_workspaces == 100
    assert r.revision > 0
    peter = As.of(channel, "user:peter")
    got = await peter.orgs.GetOrganization(pb.GetOrganizationRequest(organization=org.id))
    assert got.organization.handle == "initech"
    assert got.organization.revision == r.revision
    members = await peter.members.ListMembers(pb.ListMembersRequest(organization=org.id))
    assert [(m.user_id, m.email, m.role) for m in members.members] == [("peter", "peter@initech.test", "Owner")]
    assert await allowed(channel, "user:peter", "create:workspace", organization=org.id)
    assert await allowed(channel, "user:peter", "bypass:sso", organization=org.id)  # R24
    # Handles are unique.
    assert (
        await code(
            As.of(channel).orgs.CreateOrganization(
                pb.CreateOrganizationRequest(handle="initech", name="Other", admin_user_id="x")
            )
        )
        == C.ALREADY_EXISTS
    )


async def test_update_limits_admin_only(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice, bob = As.of(channel, "user:alice"), As.of(channel, "user:bob")
    r = await alice.orgs.UpdateOrganizationLimits(
        pb.UpdateOrganizationLimitsRequest(organization="acme", limits=pb.Limits(max_workspaces=3))
    )
    assert r.organization.limits.max_workspaces == 3
    assert r.organization.limits.max_members == 1000
    assert r.revision == r.organization.revision > 0
    assert (
        await code(
            bob.orgs.UpdateOrganizationLimits(
                pb.UpdateOrganizationLimitsRequest(organization="acme", limits=pb.Limits(max_workspaces=300))
            )
        )
        == C.PERMISSION_DENIED
    )
    assert (
        await bob.orgs.GetOrganization(pb.GetOrganizationRequest(organization="acme"))
    ).organization.limits.max_workspaces == 3


async def test_r3_last_owner_cannot_be_removed(app: App, channel) -> None:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    before = head(app)
    for call in (
        lambda: alice.members.RemoveMember(pb.RemoveMemberRequest(organization="acme", user_id="alice")),  # leaving
        lambda: alice.members.ChangeMemberRole(
            pb.ChangeMemberRoleRequest(organization="acme", user_id="alice", role="Member")
        ),
    ):  # lazily: a grpc.aio call starts when created
        assert await code(call()) == C.FAILED_PRECONDITION
    assert head(app) == before
    # An Admin does not stand in for the last Owner; with a second Owner, the first may leave.
    await add_member(app, "acme", "ann", "Admin")
    assert await code(alice.members.RemoveMember(pb.RemoveMemberRequest(organization="acme", user_id="alice"))) == (
        C.FAILED_PRECONDITION
    )
    await add_member(app, "acme", "bob", "Owner")
    await alice.members.RemoveMember(pb.RemoveMemberRequest(organization="acme", user_id="alice"))
    bob = As.of(channel, "user:bob")
    assert (
        await code(
            bob.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization="acme", user_id="bob", role="Member"))
        )
        == C.FAILED_PRECONDITION
    )


async def test_r4_removed_member_loses_all_access_at_once(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice = As.of(channel, "user:alice")
    for ws, default in (("w1", ""), ("w2", ""), ("w3", "Viewer")):
        await alice.workspaces.CreateWorkspace(
            pb.CreateWorkspaceRequest(organization="acme", id=ws, handle=ws, default_role=default)
        )
    for ws in ("w1", "w2"):
        await alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace=ws, subject="user:bob", role="Developer")
        )
    assert await allowed(channel, "user:bob", "see_flows", workspace="w3")
    await alice.members.RemoveMember(pb.RemoveMemberRequest(organization="acme", user_id="bob"))
    for ws in ("w1", "w2", "w3"):
        assert not await allowed(channel, "user:bob", "see_flows", workspace=ws)
    assert not await allowed(channel, "user:bob", "read:workspace", organization="acme")
    r = await alice.access.ListWorkspaceAccess(pb.ListWorkspaceAccessRequest(workspace="w1"))
    assert list(r.access) == []
    assert (
        await code(As.of(channel, "user:bob").workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme")))
        == C.NOT_FOUND
    )


async def test_r8_only_admins_make_admins(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    await add_member(app, "acme", "carol")
    alice = As.of(channel, "user:alice")
    # A custom organization role that may change memberships, but is not Admin.
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme",
            id="people-ops",
            name="People ops",
            level="organization",
            inherits="Member",
            scopes=["update:account_membership", "delete:account_membership"],
        )
    )
    await alice.members.ChangeMemberRole(
        pb.ChangeMemberRoleRequest(organization="acme", user_id="bob", role="people-ops")
    )
    bob = As.of(channel, "user:bob")
    assert (
        await code(
            bob.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization="acme", user_id="carol", role="Admin"))
        )
        == C.PERMISSION_DENIED
    )
    assert (
        await code(
            bob.members.ChangeMemberRole(
                pb.ChangeMemberRoleRequest(organization="acme", user_id="alice", role="Member")
            )
        )
        == C.PERMISSION_DENIED
    )
    assert (
        await code(bob.members.RemoveMember(pb.RemoveMemberRequest(organization="acme", user_id="alice")))
        == C.PERMISSION_DENIED
    )
    # What the custom role allows, it may do: carol becomes people-ops, then is removed.
    assert (
        await code(
            bob.members.ChangeMemberRole(
                pb.ChangeMemberRoleRequest(organization="acme", user_id="carol", role="people-ops")
            )
        )
        == C.OK
    )
    # A plain Member may change nothing.
    await add_member(app, "acme", "dave")
    dave = As.of(channel, "user:dave")
    assert (
        await code(
            dave.members.ChangeMemberRole(
                pb.ChangeMemberRoleRequest(organization="acme", user_id="carol", role="Member")
            )
        )
        == C.PERMISSION_DENIED
    )
    # An Admin may.
    r = await alice.members.ChangeMemberRole(
        pb.ChangeMemberRoleRequest(organization="acme", user_id="carol", role="Admin")
    )
    assert r.member.role == "Admin"
    assert r.revision > 0
    assert await allowed(channel, "user:carol", "delete:workspace", organization="acme")


async def test_r11_service_account_is_never_admin(app: App, channel) -> None:
    await create_org(channel)
    await add_service_account(app, "acme", "robot")
    alice = As.of(channel, "user:alice")
    # A service account is not a member: its organization role changes elsewhere, never here.
    assert (
        await code(
            alice.members.ChangeMemberRole(
                pb.ChangeMemberRoleRequest(organization="acme", user_id="robot", role="Admin")
            )
        )
        == C.NOT_FOUND
    )
    assert not await allowed(channel, "service_account:robot", "create:workspace", organization="acme")


async def test_change_role_to_unknown_role_is_invalid(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice = As.of(channel, "user:alice")
    before = head(app)
    for role in ("Viewer", "no-such-role"):
        e = await error(
            alice.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization="acme", user_id="bob", role=role))
        )
        assert e.code() == C.INVALID_ARGUMENT
        assert (e.details() or "").startswith("role:")
    assert head(app) == before


async def test_list_members_pages(app: App, channel) -> None:
    await create_org(channel)
    for i in range(5):
        await add_member(app, "acme", f"u{i}")
    alice = As.of(channel, "user:alice")
    seen, token = [], ""
    while True:
        r = await alice.members.ListMembers(pb.ListMembersRequest(organization="acme", page_size=2, page_token=token))
        seen += [m.user_id for m in r.members]
        if not (token := r.next_page_token):
            break
    assert seen == sorted(["alice", *(f"u{i}" for i in range(5))])
