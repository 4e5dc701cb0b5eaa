"""The audit log: every write records orgauthz.<resource>.<action>; filters and paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from tests.management.support import As, add_member, code, create_org, error

C = grpc.StatusCode


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


async def _all(alice: As, **filters) -> list[pb.AuditEvent]:
    out, token = [], ""
    while True:
        r = await alice.audit.ListAuditEvents(
            pb.ListAuditEventsRequest(organization="acme", page_size=2, page_token=token, **filters)
        )
        out += list(r.events)
        if not (token := r.next_page_token):
            return out


async def test_every_write_is_audited_with_filters_and_paging(app: App, channel) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice = As.of(channel, "user:alice")
    w = (
        await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    ).revision
    await alice.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w", role="Viewer"))
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:bob", role="Runner")
    )
    await alice.access.ChangeWorkspaceAccess(
        pb.ChangeWorkspaceAccessRequest(workspace="w", subject="user:bob", role="Owner")
    )
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(organization="acme", id="r", name="R", level="workspace", scopes=["see_flows"])
    )
    await alice.roles.UpdateRole(pb.UpdateRoleRequest(organization="acme", role="r", name="R2", scopes=["see_flows"]))
    await alice.roles.DeleteRole(pb.DeleteRoleRequest(organization="acme", role="r"))
    await alice.orgs.UpdateOrganizationLimits(
        pb.UpdateOrganizationLimitsRequest(organization="acme", limits=pb.Limits(max_members=5))
    )
    await alice.access.RevokeWorkspaceAccess(pb.RevokeWorkspaceAccessRequest(workspace="w", subject="user:bob"))
    await alice.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization="acme", user_id="bob", role="Owner"))
    await As.of(channel, "user:bob").members.ChangeMemberRole(
        pb.ChangeMemberRoleRequest(organization="acme", user_id="alice", role="Member")
    )
    await alice.members.RemoveMember(pb.RemoveMemberRequest(organization="acme", user_id="alice"))
    bob = As.of(channel, "user:bob")
    await bob.workspaces.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace="w"))

    events = await _all(bob)
    names = [e.event for e in reversed(events)]
    assert names == [
        "orgauthz.organization.created",
        "orgauthz.member.added",
        "orgauthz.workspace.created",
        "orgauthz.workspace.default-role-set",
        "orgauthz.workspace-access.granted",
        "orgauthz.workspace-access.changed",
        "orgauthz.role.created",
        "orgauthz.role.updated",
        "orgauthz.role.deleted",
        "orgauthz.organization.limits-updated",
        "orgauthz.workspace-access.revoked",
        "orgauthz.member.role-changed",
        "orgauthz.member.role-changed",
        "orgauthz.member.left",
        "orgauthz.workspace.deleted",
    ]
    assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
    created = next(e for e in events if e.event == "orgauthz.workspace.created")
    assert created.actor == "user:alice"
    assert created.workspace == "w"
    assert created.revision == w
    assert created.target == "workspace:w"
    assert created.details["handle"] == "w"

    by_bob = await _all(bob, actor="user:bob")
    assert [e.event for e in by_bob] == ["orgauthz.workspace.deleted", "orgauthz.member.role-changed"]
    in_w = await _all(bob, workspace="w")
    assert len(in_w) == 6
    assert all(e.workspace == "w" for e in in_w)
    only = await _all(bob, event="orgauthz.workspace-access.granted")
    assert [e.target for e in only] == ["user:bob"]
    assert len(await _all(bob, start_time=_ts(start))) == len(events)
    assert await _all(bob, end_time=_ts(start)) == []
    assert await _all(bob, start_time=_ts(datetime.now(UTC) + timedelta(hours=1))) == []


async def test_only_readers_of_the_audit_log(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    bob = As.of(channel, "user:bob")
    assert await code(bob.audit.ListAuditEvents(pb.ListAuditEventsRequest(organization="acme"))) == C.PERMISSION_DENIED
    alice = As.of(channel, "user:alice")
    for request, field in (
        (pb.ListAuditEventsRequest(organization="acme", actor="alice"), "actor"),
        (pb.ListAuditEventsRequest(organization="acme", event="Bad Event!"), "event"),
        (pb.ListAuditEventsRequest(organization="acme", workspace="a b"), "workspace"),
        (pb.ListAuditEventsRequest(organization="acme", start_time=Timestamp(seconds=-(10**12))), "start_time"),
        (pb.ListAuditEventsRequest(organization="acme", page_token="eHl6"), "page_token"),
    ):
        e = await error(alice.audit.ListAuditEvents(request))
        assert e.code() == C.INVALID_ARGUMENT, field
        assert (e.details() or "").startswith(f"{field}:"), field
