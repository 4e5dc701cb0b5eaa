"""LeaveOrganization: the actor leaves (R4: its access goes at once); the last Admin cannot (R3)."""

from __future__ import annotations

import grpc
from google.protobuf.json_format import MessageToDict

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from tests.management.support import As, add_member, allowed, code, create_org, error, head

C = grpc.StatusCode


async def test_r4_a_member_leaves_and_loses_its_access_at_once(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice, bob = As.of(channel, "user:alice"), As.of(channel, "user:bob")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:bob", role="Developer")
    )
    assert await allowed(channel, "user:bob", "manage_flows", workspace="w")
    before = head(app)
    r = await bob.members.LeaveOrganization(pb.LeaveOrganizationRequest(organization="acme"))
    assert r.revision == head(app) > before
    assert not await allowed(channel, "user:bob", "see_flows", workspace="w")
    assert not await allowed(channel, "user:bob", "read:account", organization="acme")
    members = await alice.members.ListMembers(pb.ListMembersRequest(organization="acme"))
    assert [m.user_id for m in members.members] == ["alice"]
    events = await alice.audit.ListAuditEvents(
        pb.ListAuditEventsRequest(organization="acme", event="orgauthz.member.left")
    )
    [event] = events.events
    assert (event.actor, event.target, event.revision) == ("user:bob", "user:bob", r.revision)
    assert MessageToDict(event.details) == {"role": "Member", "grants_removed": 1}
    # Gone: leaving again is NOT_FOUND, like any organization it is not in.
    assert await code(bob.members.LeaveOrganization(pb.LeaveOrganizationRequest(organization="acme"))) == C.NOT_FOUND


async def test_r3_the_last_owner_cannot_leave(app: App, channel) -> None:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    before = head(app)
    e = await error(alice.members.LeaveOrganization(pb.LeaveOrganizationRequest(organization="acme")))
    assert e.code() == C.FAILED_PRECONDITION
    assert "R3" in (e.details() or "")
    assert head(app) == before
    assert await allowed(channel, "user:alice", "read:audit_event", organization="acme")
    # An Admin does not stand in for the last Owner; a second Owner does.
    await add_member(app, "acme", "ann", role="Admin")
    assert await code(alice.members.LeaveOrganization(pb.LeaveOrganizationRequest(organization="acme"))) == (
        C.FAILED_PRECONDITION
    )
    await add_member(app, "acme", "olga", role="Owner")
    await alice.members.LeaveOrganization(pb.LeaveOrganizationRequest(organization="acme"))
    assert not await allowed(channel, "user:alice", "read:account", organization="acme")


async def test_an_outsider_gets_not_found(app: App, channel) -> None:
    await create_org(channel)
    await create_org(channel, "globex", "gina")
    gina = As.of(channel, "user:gina")
    for org in ("acme", "nope"):
        assert await code(gina.members.LeaveOrganization(pb.LeaveOrganizationRequest(organization=org))) == (
            C.NOT_FOUND
        )


async def test_a_service_account_cannot_leave(app: App, channel) -> None:
    await create_org(channel)
    created = await spbg.ServiceAccountServiceStub(channel).CreateServiceAccount(
        spb.CreateServiceAccountRequest(organization="acme", id="robot", name="Robot"),
        metadata=(("x-orgauthz-actor", "user:alice"),),
    )
    robot = As.of(channel, api_key=created.api_key)
    before = head(app)
    assert await code(robot.members.LeaveOrganization(pb.LeaveOrganizationRequest(organization="acme"))) == (
        C.PERMISSION_DENIED
    )
    assert head(app) == before
