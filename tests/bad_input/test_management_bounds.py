"""SPEC §4: out-of-bounds input is INVALID_ARGUMENT naming the field, and nothing is written."""

from __future__ import annotations

import base64

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from tests.management.support import As, add_member, code, create_org, error, head

C = grpc.StatusCode
LONG_ID = "x" * 129
LONG_NAME = "n" * 201
# A token this server never issues: its key holds a NUL (PostgreSQL text cannot).
NUL_TOKEN = base64.urlsafe_b64encode(b"a\x00b").decode()

# (service attribute, method, request, field the error must name)
CASES = [
    (
        "orgs",
        "CreateOrganization",
        pb.CreateOrganizationRequest(handle="ok", name="Ok", admin_user_id=LONG_ID),
        "admin_user_id",
    ),
    (
        "orgs",
        "CreateOrganization",
        pb.CreateOrganizationRequest(handle="Not_OK", name="x", admin_user_id="u"),
        "handle",
    ),
    (
        "orgs",
        "CreateOrganization",
        pb.CreateOrganizationRequest(handle="ok", name=LONG_NAME, admin_user_id="u"),
        "name",
    ),
    ("orgs", "CreateOrganization", pb.CreateOrganizationRequest(handle="ok", name="", admin_user_id="u"), "name"),
    (
        "orgs",
        "CreateOrganization",
        pb.CreateOrganizationRequest(id="a b", handle="ok", name="x", admin_user_id="u"),
        "id",
    ),
    (
        "orgs",
        "CreateOrganization",
        pb.CreateOrganizationRequest(handle="ok", name="x", admin_user_id="u", admin_email="not-an-email"),
        "admin_email",
    ),
    (
        "orgs",
        "CreateOrganization",
        pb.CreateOrganizationRequest(
            handle="ok", name="x", admin_user_id="u", limits=pb.Limits(max_workspaces=1_000_001)
        ),
        "limits.max_workspaces",
    ),
    ("orgs", "GetOrganization", pb.GetOrganizationRequest(organization=""), "organization"),
    (
        "orgs",
        "UpdateOrganizationLimits",
        pb.UpdateOrganizationLimitsRequest(organization="acme", limits=pb.Limits(max_members=2_000_000)),
        "limits.max_members",
    ),
    ("orgs", "UpdateOrganization", pb.UpdateOrganizationRequest(organization="acme", name=""), "name"),
    ("orgs", "UpdateOrganization", pb.UpdateOrganizationRequest(organization="acme", name=LONG_NAME), "name"),
    ("orgs", "UpdateOrganization", pb.UpdateOrganizationRequest(organization="acme", name="a\u202eb"), "name"),
    ("orgs", "UpdateOrganization", pb.UpdateOrganizationRequest(organization=LONG_ID, name="x"), "organization"),
    ("orgs", "ListMyOrganizations", pb.ListMyOrganizationsRequest(page_size=1001), "page_size"),
    ("orgs", "ListMyOrganizations", pb.ListMyOrganizationsRequest(page_token=NUL_TOKEN), "page_token"),
    ("workspaces", "CreateWorkspace", pb.CreateWorkspaceRequest(organization="acme", handle="-bad"), "handle"),
    (
        "workspaces",
        "CreateWorkspace",
        pb.CreateWorkspaceRequest(organization="acme", handle="ok", description="d" * 1001),
        "description",
    ),
    ("workspaces", "UpdateWorkspace", pb.UpdateWorkspaceRequest(workspace="", name="x"), "workspace"),
    ("workspaces", "UpdateWorkspace", pb.UpdateWorkspaceRequest(workspace="w", handle="Not_OK"), "handle"),
    ("workspaces", "UpdateWorkspace", pb.UpdateWorkspaceRequest(workspace="w", name=LONG_NAME), "name"),
    ("workspaces", "UpdateWorkspace", pb.UpdateWorkspaceRequest(workspace="w", name="a\x00b"), "name"),
    ("workspaces", "UpdateWorkspace", pb.UpdateWorkspaceRequest(workspace="w", description="d" * 1001), "description"),
    ("workspaces", "UpdateWorkspace", pb.UpdateWorkspaceRequest(workspace="w", description="a\u200bb"), "description"),
    ("workspaces", "CreateWorkspace", pb.CreateWorkspaceRequest(organization="acme", handle="h" * 65), "handle"),
    (
        "workspaces",
        "CreateWorkspace",
        pb.CreateWorkspaceRequest(organization="acme", handle="ok", name="a\x00b"),
        "name",
    ),
    (
        "workspaces",
        "CreateWorkspace",
        pb.CreateWorkspaceRequest(organization="acme", handle="ok", default_role="Admin"),
        "default_role",
    ),
    ("workspaces", "CreateWorkspace", pb.CreateWorkspaceRequest(organization=LONG_ID, handle="ok"), "organization"),
    ("workspaces", "ListWorkspaces", pb.ListWorkspacesRequest(organization="acme", page_size=5000), "page_size"),
    ("workspaces", "ListWorkspaces", pb.ListWorkspacesRequest(organization="acme", page_token="%%%"), "page_token"),
    ("workspaces", "ListWorkspaces", pb.ListWorkspacesRequest(organization="acme", page_token=NUL_TOKEN), "page_token"),
    ("workspaces", "GetWorkspace", pb.GetWorkspaceRequest(workspace=""), "workspace"),
    ("workspaces", "DeleteWorkspace", pb.DeleteWorkspaceRequest(workspace="a/b"), "workspace"),
    ("workspaces", "SetDefaultRole", pb.SetDefaultRoleRequest(workspace="w", role="Nope"), "role"),
    ("workspaces", "SetDefaultRole", pb.SetDefaultRoleRequest(workspace="w", role="r o l e"), "role"),
    ("members", "ListMembers", pb.ListMembersRequest(organization="acme", page_token="x" * 600), "page_token"),
    ("members", "ListMembers", pb.ListMembersRequest(organization="acme", page_token=NUL_TOKEN), "page_token"),
    ("members", "ChangeMemberRole", pb.ChangeMemberRoleRequest(organization="acme", user_id="bob", role=""), "role"),
    (
        "members",
        "ChangeMemberRole",
        pb.ChangeMemberRoleRequest(organization="acme", user_id=LONG_ID, role="Member"),
        "user_id",
    ),
    ("members", "RemoveMember", pb.RemoveMemberRequest(organization="acme", user_id=""), "user_id"),
    ("members", "LeaveOrganization", pb.LeaveOrganizationRequest(organization=""), "organization"),
    ("members", "LeaveOrganization", pb.LeaveOrganizationRequest(organization="a b"), "organization"),
    (
        "access",
        "GrantWorkspaceAccess",
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="bob", role="Viewer"),
        "subject",
    ),
    (
        "access",
        "GrantWorkspaceAccess",
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:bob", role="Member"),
        "role",
    ),
    (
        "access",
        "GrantWorkspaceAccess",
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:" + LONG_ID, role="Viewer"),
        "subject",
    ),
    (
        "access",
        "ChangeWorkspaceAccess",
        pb.ChangeWorkspaceAccessRequest(workspace="", subject="user:bob", role="Viewer"),
        "workspace",
    ),
    ("access", "RevokeWorkspaceAccess", pb.RevokeWorkspaceAccessRequest(workspace="w", subject="group:x"), "subject"),
    ("access", "ListWorkspaceAccess", pb.ListWorkspaceAccessRequest(workspace="w", page_size=1001), "page_size"),
    ("access", "ListWorkspaceAccess", pb.ListWorkspaceAccessRequest(workspace="w", page_token=NUL_TOKEN), "page_token"),
    (
        "roles",
        "CreateRole",
        pb.CreateRoleRequest(organization="acme", name="x", level="workspace", scopes=["see_flows"] * 201),
        "scopes",
    ),
    (
        "roles",
        "CreateRole",
        pb.CreateRoleRequest(organization="acme", name="x", level="workspace", scopes=["SEE FLOWS"]),
        "scopes[0]",
    ),
    (
        "roles",
        "CreateRole",
        pb.CreateRoleRequest(
            organization="acme", name="x", level="workspace", scopes=["see_flows"], description="d" * 1001
        ),
        "description",
    ),
    (
        "roles",
        "CreateRole",
        pb.CreateRoleRequest(organization="acme", name=LONG_NAME, level="workspace", scopes=["see_flows"]),
        "name",
    ),
    ("roles", "UpdateRole", pb.UpdateRoleRequest(organization="acme", role="", name="x"), "role"),
    ("roles", "DeleteRole", pb.DeleteRoleRequest(organization="acme", role=LONG_ID), "role"),
    ("roles", "ListRoles", pb.ListRolesRequest(organization="acme", level="team"), "level"),
    ("roles", "ListScopes", pb.ListScopeCatalogRequest(page_size=1001), "page_size"),
    ("audit", "ListAuditEvents", pb.ListAuditEventsRequest(organization="acme", page_size=1001), "page_size"),
    (
        "audit",
        "ListAuditEvents",  # "²".isdigit(), yet no revision
        pb.ListAuditEventsRequest(organization="acme", page_token=base64.urlsafe_b64encode("²".encode()).decode()),
        "page_token",
    ),
]


async def test_out_of_bounds_input_is_invalid_argument_naming_the_field(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    alice = As.of(channel, "user:alice")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
    before = head(app)
    for service, method, request, field in CASES:
        e = await error(getattr(getattr(alice, service), method)(request))
        assert e.code() == C.INVALID_ARGUMENT, (method, field, e.code(), e.details())
        assert (e.details() or "").startswith(f"{field}:"), (method, field, e.details())
    assert head(app) == before


_text = st.text(st.characters(codec="utf-8"), max_size=140)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(org=_text, handle=_text, name=_text, ws=_text, subject=_text, role=_text)
async def test_arbitrary_input_never_fails_internally(
    app: App, channel, org: str, handle: str, name: str, ws: str, subject: str, role: str
) -> None:
    alice = As.of(channel, "user:alice")
    calls = [
        lambda: alice.workspaces.CreateWorkspace(
            pb.CreateWorkspaceRequest(organization=org, handle=handle, name=name, default_role=role)
        ),
        lambda: alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role)
        ),
        lambda: alice.members.ChangeMemberRole(pb.ChangeMemberRoleRequest(organization=org, user_id=name, role=role)),
        lambda: alice.roles.CreateRole(
            pb.CreateRoleRequest(organization=org, name=name, level=handle, inherits=role, scopes=[subject])
        ),
        lambda: alice.audit.ListAuditEvents(
            pb.ListAuditEventsRequest(organization=org, actor=subject, event=name, page_token=handle)
        ),
    ]
    for call in calls:
        status = await code(call())
        # The database is up: UNAVAILABLE would be a store error passed off as an outage.
        assert status not in (C.INTERNAL, C.UNKNOWN, C.UNAVAILABLE), status
