"""Teams through gRPC (R25, R18, R16, R28, R10, R4, R13, R19): management, decisions through a
team, and what removing a member, a service account, a team or a workspace takes away."""

from __future__ import annotations

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from orgauthz.v1 import teams_pb2 as tpb
from orgauthz.v1 import teams_pb2_grpc as tpbg
from tests.management.support import As, add_member, add_service_account, allowed, code, create_org, error, head

C = grpc.StatusCode


def teams_of(channel: grpc.aio.Channel, actor: str) -> tpbg.TeamServiceStub:
    stub = tpbg.TeamServiceStub(channel)

    class Bound:
        def __getattr__(self, name: str):  # a bound grpc.aio method
            method = getattr(stub, name)
            return lambda request: method(request, metadata=(("x-orgauthz-actor", actor),))

    return Bound()  # type: ignore[return-value]


async def _world(app: App, channel: grpc.aio.Channel) -> tuple[As, tpbg.TeamServiceStub]:
    """acme: alice Owner; bob, carol Members; ci a service account; workspaces ``w`` (no
    default role) and ``v`` (default Viewer); team ``eng`` = bob + ci, Developer in ``w``."""
    await create_org(channel)
    await add_member(app, "acme", "bob")
    await add_member(app, "acme", "carol")
    await add_service_account(app, "acme", "ci")
    alice = As.of(channel, "user:alice")
    for ws in ("w", "v"):
        await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id=ws, handle=ws))
    await alice.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="v", role="Viewer"))
    teams = teams_of(channel, "user:alice")
    await teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", id="eng", name="Engineering"))
    await teams.AddTeamMembers(
        tpb.AddTeamMembersRequest(organization="acme", id="eng", subjects=["user:bob", "service_account:ci"])
    )
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="team:eng", role="Developer")
    )
    return alice, teams


async def test_r18_a_team_grant_reaches_its_members_and_explain_names_the_team(app: App, channel) -> None:
    alice, _ = await _world(app, channel)
    for subject in ("user:bob", "service_account:ci"):
        assert await allowed(channel, subject, "manage_flows", workspace="w")
    assert not await allowed(channel, "user:carol", "see_flows", workspace="w")  # not in the team
    r = await alice.authz.Check(apb.CheckRequest(subject="user:bob", workspace="w", scope="manage_flows", explain=True))
    assert list(r.reasons) == ["team eng: workspace role Developer"]
    scopes = await alice.authz.ListScopes(apb.ListScopesRequest(subject="service_account:ci", workspace="w"))
    assert "manage_deployments" in scopes.scopes
    # Where it can go: w only through the team (v's default role never applies to it, R17).
    where = await alice.authz.ListAccessibleWorkspaces(
        apb.ListAccessibleWorkspacesRequest(subject="service_account:ci")
    )
    assert [w.workspace for w in where.workspaces] == ["w"]
    where = await alice.authz.ListAccessibleWorkspaces(apb.ListAccessibleWorkspacesRequest(subject="user:carol"))
    assert [w.workspace for w in where.workspaces] == ["v"]  # the default role only; no team


async def test_r30_members_see_the_workspaces_their_teams_can_access(app: App, channel) -> None:
    await _world(app, channel)
    for subject in ("user:bob", "user:carol"):
        me = As.of(channel, subject)
        listed = await me.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme"))
        expected = ["v", "w"] if subject == "user:bob" else ["v"]  # w only through the team
        assert sorted(w.id for w in listed.workspaces) == expected
    assert (await As.of(channel, "user:bob").workspaces.GetWorkspace(pb.GetWorkspaceRequest(workspace="w"))).workspace
    assert await code(As.of(channel, "user:carol").workspaces.GetWorkspace(pb.GetWorkspaceRequest(workspace="w"))) == (
        C.NOT_FOUND
    )


async def test_r17_r18_union_with_the_default_role_for_users_never_for_service_accounts(app: App, channel) -> None:
    alice, _ = await _world(app, channel)
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="v", subject="team:eng", role="Worker")
    )
    # bob: default Viewer (see_automations) plus the team's Worker (write_workers).
    assert await allowed(channel, "user:bob", "see_automations", workspace="v")
    assert await allowed(channel, "user:bob", "write_workers", workspace="v")
    # ci: the team's Worker, never the default role, not even through the team.
    assert await allowed(channel, "service_account:ci", "write_workers", workspace="v")
    assert not await allowed(channel, "service_account:ci", "see_automations", workspace="v")


async def test_r25_removing_a_member_or_the_team_or_its_grant_denies_at_once(app: App, channel) -> None:
    alice, teams = await _world(app, channel)
    r = await teams.RemoveTeamMembers(
        tpb.RemoveTeamMembersRequest(organization="acme", id="eng", subjects=["user:bob"])
    )
    assert r.removed == 1
    assert not await allowed(channel, "user:bob", "see_flows", workspace="w")
    assert await allowed(channel, "service_account:ci", "see_flows", workspace="w")
    await alice.access.RevokeWorkspaceAccess(pb.RevokeWorkspaceAccessRequest(workspace="w", subject="team:eng"))
    assert not await allowed(channel, "service_account:ci", "see_flows", workspace="w")
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="team:eng", role="Viewer")
    )
    assert await allowed(channel, "service_account:ci", "see_flows", workspace="w")
    before = head(app)
    d = await teams.DeleteTeam(tpb.DeleteTeamRequest(organization="acme", id="eng"))
    assert d.revision == before + 1  # one revision (R25)
    assert not await allowed(channel, "service_account:ci", "see_flows", workspace="w")
    listed = await alice.access.ListWorkspaceAccess(pb.ListWorkspaceAccessRequest(workspace="w"))
    assert [g.subject for g in listed.access] == []  # R19: the team's grants went with it


async def test_r4_r13_a_removed_member_or_deleted_service_account_leaves_every_team(app: App, channel) -> None:
    alice, teams = await _world(app, channel)
    await alice.members.RemoveMember(pb.RemoveMemberRequest(organization="acme", user_id="bob"))
    assert not await allowed(channel, "user:bob", "see_flows", workspace="w")
    await spbg.ServiceAccountServiceStub(channel).DeleteServiceAccount(
        spb.DeleteServiceAccountRequest(organization="acme", id="ci"), metadata=(("x-orgauthz-actor", "user:alice"),)
    )
    assert not await allowed(channel, "service_account:ci", "see_flows", workspace="w")
    members = await teams.ListTeamMembers(tpb.ListTeamMembersRequest(organization="acme", id="eng"))
    assert list(members.subjects) == []
    # Rejoining does not bring the team back: membership was removed, not hidden.
    await add_member(app, "acme", "bob")
    assert not await allowed(channel, "user:bob", "see_flows", workspace="w")


async def test_r19_deleting_a_workspace_removes_the_team_links_there(app: App, channel) -> None:
    alice, teams = await _world(app, channel)
    await alice.workspaces.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace="w"))
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    assert not await allowed(channel, "user:bob", "see_flows", workspace="w")
    got = await teams.GetTeam(tpb.GetTeamRequest(organization="acme", id="eng"))
    assert got.team.member_count == 2


async def test_team_management_reads_pages_and_names_the_clashing_field(app: App, channel) -> None:
    alice, teams = await _world(app, channel)
    e = await error(teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", id="eng2", name="Engineering")))
    assert e.code() == C.ALREADY_EXISTS
    assert (e.details() or "").startswith("name:")
    e = await error(teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", id="eng", name="Other")))
    assert (e.details() or "").startswith("id:")
    for i in range(3):
        await teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", id=f"t{i}", name=f"T{i}"))
    ids, token = [], ""
    while True:
        p = await teams.ListTeams(tpb.ListTeamsRequest(organization="acme", page_size=2, page_token=token))
        ids += [t.id for t in p.teams]
        if not (token := p.next_page_token):
            break
    assert ids == ["eng", "t0", "t1", "t2"]
    u = await teams.UpdateTeam(tpb.UpdateTeamRequest(organization="acme", id="t0", name="Zero", description="z"))
    assert (u.team.name, u.team.description) == ("Zero", "z")
    e = await error(teams.UpdateTeam(tpb.UpdateTeamRequest(organization="acme", id="t1", name="Zero")))
    assert (e.details() or "").startswith("name:")
    mine = await teams_of(channel, "user:bob").ListSubjectTeams(
        tpb.ListSubjectTeamsRequest(organization="acme", subject="service_account:ci")
    )
    assert [t.id for t in mine.teams] == ["eng"]  # R25: Members read teams
    events = await alice.audit.ListAuditEvents(pb.ListAuditEventsRequest(organization="acme", page_size=1000))
    names = [e.event for e in events.events]
    assert {"orgauthz.team.created", "orgauthz.team-membership.created", "orgauthz.team.updated"} <= set(names)
    # One revision, one event: the two members added in one call are one event naming both.
    added = [e for e in events.events if e.event == "orgauthz.team-membership.created"]
    assert len(added) == 1
    assert added[0].target == "team:eng"
    assert list(added[0].details["added"]) == ["user:bob", "service_account:ci"]


async def test_r10_max_teams_holds(app: App, channel) -> None:
    await create_org(channel, max_teams=2)
    teams = teams_of(channel, "user:alice")
    for i in range(2):
        await teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", name=f"T{i}"))
    assert await code(teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", name="T9"))) == (C.RESOURCE_EXHAUSTED)


async def test_r25_only_owners_and_admins_change_teams_whatever_a_custom_role_holds(app: App, channel) -> None:
    alice, _ = await _world(app, channel)
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme",
            id="tm",
            name="Team manager",
            level="organization",
            inherits="Member",
            scopes=["create:team", "update:team", "delete:team"],
        )
    )
    await alice.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization="acme", user_id="carol", role="tm"))
    carol = teams_of(channel, "user:carol")
    before = head(app)
    for call in (
        lambda: carol.AddTeamMembers(tpb.AddTeamMembersRequest(organization="acme", id="eng", subjects=["user:carol"])),
        lambda: carol.CreateTeam(tpb.CreateTeamRequest(organization="acme", name="Mine")),
        lambda: carol.DeleteTeam(tpb.DeleteTeamRequest(organization="acme", id="eng")),
    ):
        assert await code(call()) == C.PERMISSION_DENIED
    assert head(app) == before
    assert not await allowed(channel, "user:carol", "see_flows", workspace="w")


async def test_r28_a_workspace_owner_may_not_change_the_access_of_a_team_it_belongs_to(app: App, channel) -> None:
    alice, teams = await _world(app, channel)
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:carol", role="Owner")
    )
    await teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", id="ops", name="Ops"))
    await teams.AddTeamMembers(tpb.AddTeamMembersRequest(organization="acme", id="ops", subjects=["user:carol"]))
    carol = As.of(channel, "user:carol")
    # Its own team: its own access (R28); another team, within its scopes: allowed (R16).
    assert (
        await code(
            carol.access.GrantWorkspaceAccess(
                pb.GrantWorkspaceAccessRequest(workspace="w", subject="team:ops", role="Viewer")
            )
        )
        == C.PERMISSION_DENIED
    )
    assert (
        await code(
            carol.access.ChangeWorkspaceAccess(
                pb.ChangeWorkspaceAccessRequest(workspace="w", subject="team:eng", role="Viewer")
            )
        )
        == C.OK
    )
    assert not await allowed(channel, "user:bob", "manage_flows", workspace="w")
    assert await allowed(channel, "user:bob", "see_flows", workspace="w")


@pytest.mark.parametrize(
    ("subjects", "field", "status"),
    [
        (["user:zed"], "subjects[0]", C.FAILED_PRECONDITION),  # not a member (R16)
        (["user:bob", "user:gina"], "subjects[1]", C.FAILED_PRECONDITION),  # another organization's
        (["user:bob", "user:bob"], "subjects[1]", C.INVALID_ARGUMENT),  # named twice
        ([f"user:u{i}" for i in range(1001)], "subjects", C.INVALID_ARGUMENT),  # over 1,000
        (["team:eng"], "subjects[0]", C.INVALID_ARGUMENT),  # a team holds no team
        ([], "subjects", C.INVALID_ARGUMENT),
    ],
)
async def test_bad_members_are_refused_naming_the_field_and_nothing_is_written(
    app: App, channel, subjects: list[str], field: str, status: C
) -> None:
    await _world(app, channel)
    await create_org(channel, "globex", "gina")
    before = head(app)
    e = await error(
        teams_of(channel, "user:alice").AddTeamMembers(
            tpb.AddTeamMembersRequest(organization="acme", id="eng", subjects=subjects)
        )
    )
    assert e.code() == status
    assert (e.details() or "").startswith(field)
    assert head(app) == before


async def test_unknown_and_other_organizations_teams_are_not_found(app: App, channel) -> None:
    alice, _ = await _world(app, channel)
    await create_org(channel, "globex", "gina")
    gina = teams_of(channel, "user:gina")
    await gina.CreateTeam(tpb.CreateTeamRequest(organization="globex", id="gx", name="GX"))
    teams = teams_of(channel, "user:alice")
    assert await code(teams.GetTeam(tpb.GetTeamRequest(organization="acme", id="nope"))) == C.NOT_FOUND
    assert await code(teams.GetTeam(tpb.GetTeamRequest(organization="acme", id="gx"))) == C.NOT_FOUND
    # R16: a team of another organization gets no role here.
    assert (
        await code(
            alice.access.GrantWorkspaceAccess(
                pb.GrantWorkspaceAccessRequest(workspace="w", subject="team:gx", role="Viewer")
            )
        )
        == C.FAILED_PRECONDITION
    )
