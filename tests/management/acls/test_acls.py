"""Object access control lists through gRPC (R26, R27, R28, R2a, R4, R19, R25): setting,
reading and clearing ACLs, decisions with an object, delegation to a work pool, grants,
PlanObjects, explain, and what removing an actor or a workspace takes away."""

from __future__ import annotations

import grpc

from orgauthz.api.server import App
from orgauthz.v1 import acls_pb2 as xpb
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import teams_pb2 as tpb
from tests.management.support import As, add_member, add_service_account, allowed, code, create_org, error, head
from tests.management.teams.test_teams import teams_of

C = grpc.StatusCode
D1, D2, P, B = "deployment:d1", "deployment:d2", "work_pool:p", "block:b"


def entry(subject: str, level: str, grant: bool = False) -> xpb.AclEntry:
    return xpb.AclEntry(subject=subject, level=level, grant=grant)


async def _world(app: App, channel: grpc.aio.Channel) -> As:
    """acme: alice Owner; in workspace ``w`` (default No Access): bob Developer, carol
    Viewer, dave workspace Owner, service account ci Runner; eve a Member without a role
    there; team ``oncall`` = carol + ci."""
    await create_org(channel)
    for user in ("bob", "carol", "dave", "eve"):
        await add_member(app, "acme", user)
    await add_service_account(app, "acme", "ci")
    alice = As.of(channel, "user:alice")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    for subject, role in (("user:bob", "Developer"), ("user:carol", "Viewer"), ("user:dave", "Owner")):
        await alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace="w", subject=subject, role=role)
        )
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="service_account:ci", role="Runner")
    )
    teams = teams_of(channel, "user:alice")
    await teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", id="oncall", name="On call"))
    await teams.AddTeamMembers(
        tpb.AddTeamMembersRequest(organization="acme", id="oncall", subjects=["user:carol", "service_account:ci"])
    )
    return alice


async def may(channel: grpc.aio.Channel, subject: str, scope: str, obj: str) -> bool:
    return await allowed(channel, subject, scope, workspace="w", obj=obj)


async def set_acl(who: As, obj: str, entries: list[xpb.AclEntry], expected: int = 0) -> int:
    r = await who.acls.SetAcl(xpb.SetAclRequest(workspace="w", object=obj, entries=entries, expected_revision=expected))
    return int(r.acl.revision)


async def test_r26_without_an_acl_the_workspace_decides(app: App, channel) -> None:
    await _world(app, channel)
    assert await may(channel, "user:bob", "run_deployments", D1)
    assert not await may(channel, "user:carol", "run_deployments", D1)
    assert await may(channel, "user:carol", "see_deployments", D1)
    assert not await may(channel, "user:eve", "see_deployments", D1)


async def test_r26_an_acl_keeps_governed_scopes_to_listed_subjects(app: App, channel) -> None:
    alice = await _world(app, channel)
    rev = await set_acl(alice, D1, [entry("user:bob", "view")])
    assert rev == head(app)
    assert await may(channel, "user:bob", "see_deployments", D1)
    assert not await may(channel, "user:bob", "run_deployments", D1)  # view does not cover run
    assert not await may(channel, "user:carol", "see_deployments", D1)  # not listed
    assert not await may(channel, "service_account:ci", "run_deployments", D1)
    # A scope the kind does not govern, and another object: the workspace decides.
    assert await may(channel, "user:carol", "see_flows", D1)
    assert await may(channel, "user:carol", "see_deployments", D2)
    assert await may(channel, "user:bob", "run_deployments", D2)
    # Organization Owners and workspace Owners keep full access (R2a).
    assert await may(channel, "user:alice", "manage_deployments", D1)
    assert await may(channel, "user:dave", "manage_deployments", D1)
    # Without the object, nothing changed.
    assert await allowed(channel, "user:carol", "see_deployments", workspace="w")
    # A level covers the ones below it; listing never gives what the workspace role lacks.
    await set_acl(alice, D1, [entry("user:bob", "manage"), entry("user:carol", "manage")], rev)
    assert await may(channel, "user:bob", "manage_deployments", D1)
    assert await may(channel, "user:bob", "see_deployments", D1)
    assert not await may(channel, "user:carol", "run_deployments", D1)  # Viewer: no run_deployments
    assert await may(channel, "user:carol", "see_deployments", D1)


async def test_r26_r25_listed_through_a_team(app: App, channel) -> None:
    alice = await _world(app, channel)
    await set_acl(alice, D1, [entry("team:oncall", "run")])
    assert await may(channel, "service_account:ci", "run_deployments", D1)
    assert not await may(channel, "user:bob", "run_deployments", D1)
    teams = teams_of(channel, "user:alice")
    await teams.RemoveTeamMembers(
        tpb.RemoveTeamMembersRequest(organization="acme", id="oncall", subjects=["service_account:ci"])
    )
    assert not await may(channel, "service_account:ci", "run_deployments", D1)
    await teams.AddTeamMembers(tpb.AddTeamMembersRequest(organization="acme", id="oncall", subjects=["user:bob"]))
    assert await may(channel, "user:bob", "run_deployments", D1)
    r = await alice.authz.Check(
        apb.CheckRequest(subject="user:bob", workspace="w", scope="run_deployments", object=D1, explain=True)
    )
    assert r.allowed
    assert "deployment:d1's ACL: listed at run through team:oncall" in r.reasons
    # Deleting the team takes its entries with it.
    before = (await alice.acls.GetAcl(xpb.GetAclRequest(workspace="w", object=D1))).acl.revision
    d = await teams.DeleteTeam(tpb.DeleteTeamRequest(organization="acme", id="oncall"))
    assert not await may(channel, "user:bob", "run_deployments", D1)
    got = (await alice.acls.GetAcl(xpb.GetAclRequest(workspace="w", object=D1))).acl
    assert list(got.entries) == []
    assert got.revision == d.revision > before


async def test_r26_a_grant_entry_gives_its_level_on_that_object_only(app: App, channel) -> None:
    alice = await _world(app, channel)
    await set_acl(alice, D1, [entry("user:carol", "run", grant=True), entry("user:eve", "view", grant=True)])
    assert await may(channel, "user:carol", "run_deployments", D1)  # a Viewer runs this one deployment
    assert await may(channel, "user:carol", "see_deployments", D1)
    assert not await may(channel, "user:carol", "write_deployments", D1)  # above the grant's level
    assert not await may(channel, "user:carol", "run_deployments", D2)  # never past the object
    assert await may(channel, "user:eve", "see_deployments", D1)  # no role in the workspace at all
    assert not await may(channel, "user:eve", "see_flows", D1)  # not a governed scope
    assert not await allowed(channel, "user:eve", "see_deployments", workspace="w")
    r = await alice.authz.Check(
        apb.CheckRequest(subject="user:carol", workspace="w", scope="run_deployments", object=D1, explain=True)
    )
    assert "deployment:d1's ACL: granted at run" in r.reasons
    # The actor must still be a member (R26, R4): removing carol removes her entries.
    await alice.members.RemoveMember(pb.RemoveMemberRequest(organization="acme", user_id="carol"))
    assert not await may(channel, "user:carol", "run_deployments", D1)
    got = (await alice.acls.GetAcl(xpb.GetAclRequest(workspace="w", object=D1))).acl
    assert [e.subject for e in got.entries] == ["user:eve"]
    assert got.revision == head(app)


async def test_r27_a_work_pool_acl_governs_its_deployments(app: App, channel) -> None:
    alice = await _world(app, channel)
    await set_acl(alice, D1, [entry("user:bob", "run")])
    await alice.acls.SetDeploymentWorkPool(
        xpb.SetDeploymentWorkPoolRequest(workspace="w", deployment="d1", work_pool="p")
    )
    assert await may(channel, "user:bob", "run_deployments", D1)  # p has no ACL: d1's own decides
    p_rev = await set_acl(alice, P, [entry("service_account:ci", "run")])
    assert not await may(channel, "user:bob", "run_deployments", D1)  # p's ACL governs d1 now
    assert await may(channel, "service_account:ci", "run_deployments", D1)
    assert await may(channel, "service_account:ci", "see_work_queues", P)  # queues follow the pool
    assert not await may(channel, "user:bob", "see_work_pools", P)
    got = await alice.acls.GetAcl(xpb.GetAclRequest(workspace="w", object=D1))
    assert got.work_pool == P
    assert got.governed_by.object == P
    assert got.acl.object == D1
    r = await alice.authz.Check(
        apb.CheckRequest(subject="user:bob", workspace="w", scope="run_deployments", object=D1, explain=True)
    )
    assert not r.allowed
    assert any("work_pool:p's ACL, which governs deployment:d1 (R27)" in x for x in r.reasons)
    # Clearing the pool's ACL: d1's own governs again; moving d1 off the pool does the same.
    await alice.acls.ClearAcl(xpb.ClearAclRequest(workspace="w", object=P, expected_revision=p_rev))
    assert await may(channel, "user:bob", "run_deployments", D1)
    assert not await may(channel, "service_account:ci", "run_deployments", D1)
    await set_acl(alice, P, [entry("service_account:ci", "run")])
    assert not await may(channel, "user:bob", "run_deployments", D1)
    await alice.acls.SetDeploymentWorkPool(xpb.SetDeploymentWorkPoolRequest(workspace="w", deployment="d1"))
    assert await may(channel, "user:bob", "run_deployments", D1)
    # A deployment without an ACL of its own, on a pool with one: governed too.
    await alice.acls.SetDeploymentWorkPool(
        xpb.SetDeploymentWorkPoolRequest(workspace="w", deployment="d2", work_pool="p")
    )
    assert not await may(channel, "user:bob", "run_deployments", D2)
    assert await may(channel, "service_account:ci", "run_deployments", D2)


async def test_r26_blocks_have_view_and_manage(app: App, channel) -> None:
    alice = await _world(app, channel)
    await set_acl(alice, B, [entry("user:bob", "view")])
    assert await may(channel, "user:bob", "see_secret_blocks", B)
    assert not await may(channel, "user:bob", "manage_blocks", B)
    assert not await may(channel, "user:carol", "see_blocks", B)
    e = await error(alice.acls.SetAcl(xpb.SetAclRequest(workspace="w", object=B, entries=[entry("user:bob", "run")])))
    assert e.code() == C.INVALID_ARGUMENT
    assert "entries[0].level" in (e.details() or "")


async def test_optimistic_concurrency_and_clear(app: App, channel) -> None:
    alice = await _world(app, channel)
    rev = await set_acl(alice, D1, [entry("user:bob", "view")])
    before = head(app)
    for stale in (0, rev - 1, rev + 5):
        e = await error(
            alice.acls.SetAcl(
                xpb.SetAclRequest(
                    workspace="w", object=D1, entries=[entry("user:carol", "view")], expected_revision=stale
                )
            )
        )
        assert e.code() == C.ABORTED
        assert "expected_revision" in (e.details() or "")
    assert head(app) == before  # nothing written
    assert not await may(channel, "user:carol", "see_deployments", D1)
    stale_clear = alice.acls.ClearAcl(xpb.ClearAclRequest(workspace="w", object=D1, expected_revision=rev + 1))
    assert await code(stale_clear) == C.ABORTED
    await alice.acls.ClearAcl(xpb.ClearAclRequest(workspace="w", object=D1))
    assert await may(channel, "user:carol", "see_deployments", D1)
    assert not (await alice.acls.GetAcl(xpb.GetAclRequest(workspace="w", object=D1))).HasField("acl")
    assert await code(alice.acls.ClearAcl(xpb.ClearAclRequest(workspace="w", object=D1))) == C.NOT_FOUND


async def test_plan_objects_agrees_with_check(app: App, channel) -> None:
    alice = await _world(app, channel)
    await set_acl(alice, D1, [entry("user:bob", "run")])
    await set_acl(alice, D2, [entry("user:carol", "run", grant=True)])
    await set_acl(alice, "deployment:d3", [])

    async def plan(subject: str, scope: str, kind: str = "deployment") -> tuple[str, list[str]]:
        r = await alice.authz.PlanObjects(
            apb.PlanObjectsRequest(subject=subject, workspace="w", kind=kind, scope=scope)
        )
        return apb.PlanObjectsResponse.Kind.Name(r.kind), list(r.ids)

    assert await plan("user:bob", "run_deployments") == ("ALL_EXCEPT", ["d2", "d3"])
    assert await plan("user:carol", "run_deployments") == ("ONLY", ["d2"])
    assert await plan("user:eve", "run_deployments") == ("ONLY", [])
    assert await plan("user:alice", "run_deployments") == ("ALL", [])
    assert await plan("user:bob", "see_flows") == ("ALL", [])  # not governed by deployments
    assert await plan("user:bob", "see_work_pools", "work_pool") == ("ALL", [])
    for subject in ("user:bob", "user:carol", "user:eve", "service_account:ci", "user:dave"):
        kind, ids = await plan(subject, "run_deployments")
        for obj in ("d1", "d2", "d3", "d4"):
            expected = (obj not in ids) if kind in ("ALL", "ALL_EXCEPT") else (obj in ids)
            assert await may(channel, subject, "run_deployments", f"deployment:{obj}") == expected, (subject, obj)


async def test_list_scopes_with_an_object(app: App, channel) -> None:
    alice = await _world(app, channel)
    await set_acl(alice, D1, [entry("user:bob", "view")])
    r = await alice.authz.ListScopes(apb.ListScopesRequest(subject="user:bob", workspace="w", object=D1))
    assert "see_deployments" in r.scopes
    assert "run_deployments" not in r.scopes
    assert "see_flows" in r.scopes
    r = await alice.authz.ListScopes(apb.ListScopesRequest(subject="user:bob", workspace="w"))
    assert "run_deployments" in r.scopes


async def test_who_may_read_and_write_acls(app: App, channel) -> None:
    alice = await _world(app, channel)
    bob, dave, carol = (As.of(channel, f"user:{u}") for u in ("bob", "dave", "carol"))
    req = xpb.SetAclRequest(workspace="w", object=D1, entries=[entry("user:bob", "view")])
    assert await code(bob.acls.SetAcl(req)) == C.PERMISSION_DENIED  # a Developer has no manage_acls
    rev = (await dave.acls.SetAcl(req)).acl.revision  # a workspace Owner has
    assert (await bob.acls.GetAcl(xpb.GetAclRequest(workspace="w", object=D1))).acl.revision == rev
    assert await code(carol.acls.GetAcl(xpb.GetAclRequest(workspace="w", object=D1))) == C.PERMISSION_DENIED
    outsider = As.of(channel, "user:mallory")
    assert await code(outsider.acls.GetAcl(xpb.GetAclRequest(workspace="w", object=D1))) == C.NOT_FOUND
    assert await code(outsider.acls.SetAcl(req)) == C.NOT_FOUND
    assert alice  # the Owner wrote the world


async def test_r26_only_organization_owners_and_admins_and_workspace_owners_set_acls(app: App, channel) -> None:
    """R26: "the only ones who may set ACLs (manage_acls)". A custom role holding manage_acls is
    not a workspace Owner: it sets nothing (and so cannot hand out grants beyond what it holds,
    nor change its own access: R28). The workspace Owner role held through a team is enough."""
    alice = await _world(app, channel)
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme",
            id="acl-keeper",
            name="ACL keeper",
            level="workspace",
            scopes=["manage_acls", "see_deployments"],
        )
    )
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:eve", role="acl-keeper")
    )
    eve = As.of(channel, "user:eve")
    rev = await set_acl(alice, D1, [entry("user:bob", "run")])
    before = head(app)
    for call in (
        eve.acls.SetAcl(xpb.SetAclRequest(workspace="w", object=D2, entries=[entry("user:carol", "view")])),
        eve.acls.SetAcl(xpb.SetAclRequest(workspace="w", object=D1, entries=[], expected_revision=rev)),
        eve.acls.ClearAcl(xpb.ClearAclRequest(workspace="w", object=D1, expected_revision=rev)),
        eve.acls.SetDeploymentWorkPool(xpb.SetDeploymentWorkPoolRequest(workspace="w", deployment="d1", work_pool="p")),
    ):
        e = await error(call)
        assert e.code() == C.PERMISSION_DENIED
        assert "(R26)" in (e.details() or "")
    assert head(app) == before
    assert await may(channel, "user:bob", "run_deployments", D1)
    # Through a team holding the workspace Owner role: a workspace Owner.
    teams = teams_of(channel, "user:alice")
    await teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", id="owners", name="Owners"))
    await teams.AddTeamMembers(tpb.AddTeamMembersRequest(organization="acme", id="owners", subjects=["user:eve"]))
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="team:owners", role="Owner")
    )
    await eve.acls.ClearAcl(xpb.ClearAclRequest(workspace="w", object=D1, expected_revision=rev))


async def test_bad_input_is_refused_and_writes_nothing(app: App, channel) -> None:
    alice = await _world(app, channel)
    before = head(app)
    cases = [
        (xpb.SetAclRequest(workspace="w", object="flow:f1"), C.INVALID_ARGUMENT, "object"),
        (xpb.SetAclRequest(workspace="w", object="deployment:" + "x" * 129), C.INVALID_ARGUMENT, "object"),
        (xpb.SetAclRequest(workspace="w", object="deployment:a/b"), C.INVALID_ARGUMENT, "object"),
        (
            xpb.SetAclRequest(workspace="w", object=D1, entries=[entry("user:bob", "admin")]),
            C.INVALID_ARGUMENT,
            "entries[0].level",
        ),
        (
            xpb.SetAclRequest(workspace="w", object=D1, entries=[entry("group:x", "view")]),
            C.INVALID_ARGUMENT,
            "entries[0].subject",
        ),
        (
            xpb.SetAclRequest(workspace="w", object=D1, entries=[entry("user:bob", "view"), entry("user:bob", "run")]),
            C.INVALID_ARGUMENT,
            "entries[1].subject",
        ),
        (
            xpb.SetAclRequest(workspace="w", object=D1, entries=[entry("user:mallory", "view")]),
            C.FAILED_PRECONDITION,
            "entries[0].subject",
        ),
        (
            xpb.SetAclRequest(workspace="w", object=D1, entries=[entry("team:nope", "view")]),
            C.FAILED_PRECONDITION,
            "entries[0].subject",
        ),
        (xpb.SetAclRequest(workspace="nope", object=D1), C.NOT_FOUND, "nope"),
        (xpb.SetAclRequest(workspace="w", object=D1, expected_revision=7), C.ABORTED, "expected_revision"),
    ]
    for req, status, field in cases:
        e = await error(alice.acls.SetAcl(req))
        assert (e.code(), field in (e.details() or "")) == (status, True), (req, e.details())
    assert head(app) == before
    # Decisions: an object with an organization target, or an unknown kind.
    for req in (
        apb.CheckRequest(subject="user:bob", organization="acme", scope="read:account", object=D1),
        apb.CheckRequest(subject="user:bob", workspace="w", scope="see_flows", object="flow:x"),
    ):
        e = await error(alice.authz.Check(req))
        assert e.code() == C.INVALID_ARGUMENT
        assert "object" in (e.details() or "")
    e = await error(
        alice.authz.PlanObjects(
            apb.PlanObjectsRequest(subject="user:bob", workspace="w", kind="flow", scope="see_flows")
        )
    )
    assert e.code() == C.INVALID_ARGUMENT
    assert "kind" in (e.details() or "")


async def test_r19_deleting_the_workspace_removes_its_acls(app: App, channel) -> None:
    alice = await _world(app, channel)
    await set_acl(alice, D1, [entry("user:bob", "view")])
    await alice.acls.SetDeploymentWorkPool(
        xpb.SetDeploymentWorkPoolRequest(workspace="w", deployment="d1", work_pool="p")
    )
    await alice.workspaces.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace="w"))
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:carol", role="Viewer")
    )
    assert await may(channel, "user:carol", "see_deployments", D1)
    got = await alice.acls.GetAcl(xpb.GetAclRequest(workspace="w", object=D1))
    assert not got.HasField("acl")
    assert got.work_pool == ""


async def test_list_acls_pages_by_object(app: App, channel) -> None:
    alice = await _world(app, channel)
    for obj in (D2, D1, B, P, "deployment:d3"):
        await set_acl(alice, obj, [entry("user:bob", "view")])
    seen: list[str] = []
    token = ""
    while True:
        r = await alice.acls.ListAcls(
            xpb.ListAclsRequest(workspace="w", kind="deployment", page_size=2, page_token=token)
        )
        seen += [a.object for a in r.acls]
        assert all([e.subject for e in a.entries] == ["user:bob"] for a in r.acls)
        token = r.next_page_token
        if not token:
            break
    assert seen == [D1, D2, "deployment:d3"]
    r = await alice.acls.ListAcls(xpb.ListAclsRequest(workspace="w"))
    assert [a.object for a in r.acls] == [B, D1, D2, "deployment:d3", P]
    bob = As.of(channel, "user:bob")
    assert await code(bob.acls.ListAcls(xpb.ListAclsRequest(workspace="w"))) == C.PERMISSION_DENIED
    e = await error(alice.acls.ListAcls(xpb.ListAclsRequest(workspace="w", kind="flow")))
    assert e.code() == C.INVALID_ARGUMENT
