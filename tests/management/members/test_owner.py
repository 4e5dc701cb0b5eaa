"""R24, R3 and R8 with the Owner role, through gRPC: a permission matrix of who may make,
change and remove Owners and Admins, and the last Owner who stays."""

from __future__ import annotations

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import invitations_pb2 as ipb
from orgauthz.v1 import invitations_pb2_grpc as ipbg
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from tests.management.support import As, add_member, allowed, code, create_org, head

C = grpc.StatusCode
OK, DENIED, LAST = C.OK, C.PERMISSION_DENIED, C.FAILED_PRECONDITION


async def _org(app: App, channel) -> None:
    """alice: Owner (she created it); ada: Admin; max: Member holding a custom role that may
    change roles and remove members (``update:account_membership`` needs no Admin role)."""
    await create_org(channel)
    await As.of(channel, "user:alice").roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme",
            id="hr",
            name="HR",
            level="organization",
            inherits="Member",
            scopes=["update:account_membership", "delete:account_membership", "create:invitation"],
        )
    )
    await add_member(app, "acme", "ada", "Admin")
    await add_member(app, "acme", "max", "hr")
    await add_member(app, "acme", "bob", "Member")


# (actor, user, new role, expected): who may change whose role to what.
# fmt: off
CHANGES = [
    ("ada",   "bob",   "Owner",  DENIED),  # R24: only an Owner makes an Owner
    ("max",   "bob",   "Owner",  DENIED),
    ("alice", "bob",   "Owner",  OK),
    ("ada",   "alice", "Member", DENIED),  # R24: only an Owner changes an Owner
    ("ada",   "bob",   "Admin",  OK),      # R8: an Admin makes an Admin
    ("max",   "bob",   "Admin",  DENIED),  # R8: a custom role never does
    ("alice", "ada",   "Member", OK),      # an Owner changes an Admin
    ("alice", "alice", "Admin",  LAST),    # R3: the last Owner stays
]
# fmt: on


@pytest.mark.parametrize(("actor", "user", "role", "expected"), CHANGES)
async def test_r24_who_changes_owner_and_admin_roles(
    app: App, channel, actor: str, user: str, role: str, expected: C
) -> None:
    await _org(app, channel)
    before = head(app)
    got = await code(
        As.of(channel, f"user:{actor}").members.ChangeMemberRole(
            pb.ChangeMemberRoleRequest(organization="acme", user_id=user, role=role)
        )
    )
    assert got == expected
    if expected != OK:
        assert head(app) == before  # nothing written


# fmt: off
REMOVALS = [
    ("ada",   "alice", DENIED),  # R24: only an Owner removes an Owner
    ("max",   "alice", DENIED),
    ("max",   "ada",   DENIED),  # R8: removing an Admin needs an Owner or Admin
    ("ada",   "max",   OK),
    ("alice", "ada",   OK),
    ("alice", "alice", LAST),    # R3: the last Owner can neither be removed nor leave
]
# fmt: on


@pytest.mark.parametrize(("actor", "user", "expected"), REMOVALS)
async def test_r24_who_removes_owners_and_admins(app: App, channel, actor: str, user: str, expected: C) -> None:
    await _org(app, channel)
    before = head(app)
    got = await code(
        As.of(channel, f"user:{actor}").members.RemoveMember(pb.RemoveMemberRequest(organization="acme", user_id=user))
    )
    assert got == expected
    if expected != OK:
        assert head(app) == before


async def test_r3_a_second_owner_lets_the_first_go_and_becomes_the_last(app: App, channel) -> None:
    await _org(app, channel)
    alice = As.of(channel, "user:alice")
    await alice.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization="acme", user_id="ada", role="Owner"))
    await alice.members.LeaveOrganization(pb.LeaveOrganizationRequest(organization="acme"))
    ada = As.of(channel, "user:ada")
    assert await code(ada.members.LeaveOrganization(pb.LeaveOrganizationRequest(organization="acme"))) == LAST
    assert (
        await code(
            ada.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization="acme", user_id="ada", role="Admin"))
        )
        == LAST
    )


async def test_r24_only_an_owner_invites_an_owner(app: App, channel) -> None:
    await _org(app, channel)
    invites = ipbg.InvitationServiceStub(channel)

    def invite(by: str, role: str):  # a grpc.aio call
        return invites.CreateInvitations(
            ipb.CreateInvitationsRequest(organization="acme", emails=[f"{by}-{role}@x.test"], org_role=role),
            metadata=(("x-orgauthz-actor", f"user:{by}"),),
        )

    assert await code(invite("ada", "Owner")) == DENIED
    assert await code(invite("max", "Owner")) == DENIED
    assert await code(invite("max", "Admin")) == DENIED  # R8
    assert await code(invite("ada", "Admin")) == OK
    assert await code(invite("alice", "Owner")) == OK


async def test_r11_r24_service_accounts_never_hold_owner(app: App, channel) -> None:
    await _org(app, channel)
    sas = spbg.ServiceAccountServiceStub(channel)
    got = await code(
        sas.CreateServiceAccount(
            spb.CreateServiceAccountRequest(organization="acme", id="bot", name="bot", org_role="Owner"),
            metadata=(("x-orgauthz-actor", "user:alice"),),
        )
    )
    assert got == C.INVALID_ARGUMENT


async def test_r24_only_owners_bypass_sso_and_both_have_everything_else(app: App, channel) -> None:
    await _org(app, channel)
    assert await allowed(channel, "user:alice", "bypass:sso", organization="acme")
    assert not await allowed(channel, "user:ada", "bypass:sso", organization="acme")
    assert not await allowed(channel, "user:bob", "bypass:sso", organization="acme")
    for user in ("alice", "ada"):
        assert await allowed(channel, f"user:{user}", "delete:account", organization="acme")
    # R2a: both have every workspace scope, whatever the workspace says.
    await As.of(channel, "user:alice").workspaces.CreateWorkspace(
        pb.CreateWorkspaceRequest(organization="acme", id="ws", handle="ws")
    )
    for user in ("alice", "ada"):
        assert await allowed(channel, f"user:{user}", "manage_acls", workspace="ws")
    r = await As.of(channel).authz.Check(
        apb.CheckRequest(subject="user:alice", organization="acme", scope="bypass:sso", explain=True)
    )
    assert list(r.reasons) == ["organization Owner"]


async def test_r24_no_custom_role_holds_bypass_sso(app: App, channel) -> None:
    await _org(app, channel)
    for actor in ("alice", "ada"):
        e = await code(
            As.of(channel, f"user:{actor}").roles.CreateRole(
                pb.CreateRoleRequest(
                    organization="acme",
                    id=f"sso-{actor}",
                    name=f"SSO {actor}",
                    level="organization",
                    scopes=["read:account", "bypass:sso"],
                )
            )
        )
        assert e == C.INVALID_ARGUMENT
    assert not await allowed(channel, "user:bob", "bypass:sso", organization="acme")


async def test_r24_an_owner_invitation_stands_only_while_its_inviter_is_an_owner(app: App, channel) -> None:
    await _org(app, channel)
    alice = As.of(channel, "user:alice")
    await alice.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization="acme", user_id="ada", role="Owner"))
    invites = ipbg.InvitationServiceStub(channel)
    r = await invites.CreateInvitations(
        ipb.CreateInvitationsRequest(organization="acme", emails=["new@x.test"], org_role="Owner"),
        metadata=(("x-orgauthz-actor", "user:ada"),),
    )
    token = r.results[0].token
    await alice.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization="acme", user_id="ada", role="Admin"))
    before = head(app)
    got = await code(
        invites.AcceptInvitation(
            ipb.AcceptInvitationRequest(token=token, user_id="newbie", email="new@x.test"),
            metadata=(("x-orgauthz-actor", "user:newbie"),),
        )
    )
    assert got == C.FAILED_PRECONDITION
    assert head(app) == before
    assert not await allowed(channel, "user:newbie", "bypass:sso", organization="acme")
