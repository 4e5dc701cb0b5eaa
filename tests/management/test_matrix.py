"""The permission matrix: every management RPC x every kind of actor (issue 3), on PostgreSQL.

One server with a shared secret (``auth_token``) over one PostgreSQL database built once
for this module. The organization ``acme`` has:

- ``ada``   organization Admin (R2);
- ``mia``   organization Member, no workspace access;
- ``owen``  Member, **Owner** of every workspace the cells use (R16, R20);
- ``dev``   Member, **Developer** of every workspace the cells use;
- ``ci``    a service account (Member role, Developer in the workspaces), acting with its own
  API key in ``x-orgauthz-api-key`` (R11, R14);

``eve`` is the Admin of another organization, ``other``. The anonymous caller sends no shared
secret (but asserts ``user:ada``, to show that asserting an actor is not enough). ``pam``, who
holds a custom role that manages people, is for the R8 table at the end.

Every cell acts on resources of ``acme``. Cells that change or delete something get their
own resources (a fresh workspace, member, invitation, role or service account), prepared by
``ada``, so the order of the cells does not matter and every request is valid: the Admin
column shows the request itself is accepted, the other columns test authorization only.
A refused call writes nothing: the database revision is unchanged.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import pytest_asyncio

from orgauthz.api.server import App
from orgauthz.store.snapshots import head_revision
from orgauthz.v1 import acls_pb2 as xpb
from orgauthz.v1 import acls_pb2_grpc as xpbg
from orgauthz.v1 import invitations_pb2 as ipb
from orgauthz.v1 import invitations_pb2_grpc as ipbg
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpbg
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from orgauthz.v1 import teams_pb2 as tpb
from orgauthz.v1 import teams_pb2_grpc as tpbg
from orgauthz.v1 import user_api_keys_pb2 as upb
from orgauthz.v1 import user_api_keys_pb2_grpc as upbg
from tests.conftest import settings_for
from tests.support.services import PgCluster

pytestmark = pytest.mark.postgres

C = grpc.StatusCode
OK = C.OK
DENIED = C.PERMISSION_DENIED
HIDDEN = C.NOT_FOUND  # another organization's resource: its existence is not confirmed
UNAUTH = C.UNAUTHENTICATED
MEMBER_ALREADY = C.FAILED_PRECONDITION  # not a refusal of the actor: the user already is a member

TOKEN = "matrix-shared-secret"
ACTORS = ("admin", "member", "owner", "developer", "service_account", "other_org_admin", "unauthenticated")
WS = "acme-prod"
ACL_OBJECT = "deployment:matrix"
BIG = mpb.Limits(max_members=100_000, max_service_accounts=100_000, max_workspaces=100_000)

# The matrix. Columns, in order: org Admin, org Member, workspace Owner, workspace Developer,
# service account, Admin of another organization, unauthenticated caller.
#                                                      Admin   Member  Owner   Dev     SA      other   anonymous
# fmt: off
MATRIX: dict[str, tuple[C, C, C, C, C, C, C]] = {
    # Organizations (R1, R10). Creating one is a platform operation for any asserted user;
    # never for a service account (R11). Members read the organization (read:account).
    "OrganizationService.CreateOrganization":         (OK,     OK,     OK,     OK,     DENIED, OK,     UNAUTH),
    "OrganizationService.GetOrganization":            (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),
    "OrganizationService.UpdateOrganizationLimits":   (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "OrganizationService.UpdateOrganization":         (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    # Everyone lists the organizations it belongs to (Prefect's me/organizations).
    "OrganizationService.ListMyOrganizations":        (OK,     OK,     OK,     OK,     OK,     OK,     UNAUTH),
    # Workspaces (R2, R15, R17, R19): Admins create; Admins and the workspace's Owners delete
    # (manage_workspace_settings: Prefect's "Delete the workspace"); members see those they can
    # access (R30: the Member has no access to acme-prod, so it is hidden from it); the default
    # role is set by Admins and the workspace's Owners (manage_workspace_users, R17, R20).
    "WorkspaceService.CreateWorkspace":               (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "WorkspaceService.ListWorkspaces":                (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),
    "WorkspaceService.GetWorkspace":                  (OK,     HIDDEN, OK,     OK,     OK,     HIDDEN, UNAUTH),
    "WorkspaceService.DeleteWorkspace":               (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
    "WorkspaceService.SetDefaultRole":                (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
    # Name, handle, description (R15): Admins and the workspace's Owners (manage_workspace_settings).
    "WorkspaceService.UpdateWorkspace":               (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
    # Members (R2, R3, R8): Admins change roles and remove members; members see each other.
    "MemberService.ListMembers":                      (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),
    "MemberService.ChangeMemberRole":                 (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "MemberService.RemoveMember":                     (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    # Any member may leave (a fresh actor of each kind, see SELF); a service account cannot.
    "MemberService.LeaveOrganization":                (OK,     OK,     OK,     OK,     DENIED, HIDDEN, UNAUTH),
    # Workspace access (R16): only Admins and that workspace's Owners change it; whoever may
    # see the workspace's users (see_workspace_users: Viewer and up) lists it.
    "AccessService.GrantWorkspaceAccess":             (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
    "AccessService.ChangeWorkspaceAccess":            (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
    "AccessService.RevokeWorkspaceAccess":            (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
    "AccessService.ListWorkspaceAccess":              (OK,     DENIED, OK,     OK,     OK,     HIDDEN, UNAUTH),
    # Roles (R2, R22): Admins define custom roles; members read them; the scope catalog is
    # public to every authenticated caller.
    "RoleService.ListRoles":                          (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),
    "RoleService.CreateRole":                         (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "RoleService.UpdateRole":                         (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "RoleService.DeleteRole":                         (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "RoleService.ListScopes":                         (OK,     OK,     OK,     OK,     OK,     OK,     UNAUTH),
    # Audit (R2): Admins read the audit log.
    "AuditService.ListAuditEvents":                   (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    # Invitations (R2, R5-R8): Admins invite, list, revoke and resend. Accepting or rejecting
    # needs the token and the invitation's address, and is for users only: a service account
    # never becomes a member that way. Accepting as someone who already is a member is
    # FAILED_PRECONDITION; the Admin of another organization joins acme.
    "InvitationService.CreateInvitations":            (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "InvitationService.ListInvitations":              (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "InvitationService.GetInvitation":                (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "InvitationService.RevokeInvitation":             (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "InvitationService.ResendInvitation":             (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "InvitationService.AcceptInvitation":           (MEMBER_ALREADY, MEMBER_ALREADY, MEMBER_ALREADY,
                                                      MEMBER_ALREADY, DENIED, OK, UNAUTH),
    "InvitationService.RejectInvitation":             (OK,     OK,     OK,     OK,     DENIED, OK,     UNAUTH),
    # Service accounts (R2, R11-R13): Admins create, read, rotate and delete them.
    "ServiceAccountService.CreateServiceAccount":     (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "ServiceAccountService.ListServiceAccounts":      (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),  # R30
    "ServiceAccountService.GetServiceAccount":        (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),  # R30
    "ServiceAccountService.RotateServiceAccountKey":  (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "ServiceAccountService.UpdateServiceAccount":     (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "ServiceAccountService.DeleteServiceAccount":     (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    # User API keys (R29): every cell asks about ada's own keys; only ada, asserted, manages them.
    "UserApiKeyService.CreateUserApiKey":             (OK,     DENIED, DENIED, DENIED, DENIED, DENIED, UNAUTH),
    "UserApiKeyService.ListUserApiKeys":              (OK,     DENIED, DENIED, DENIED, DENIED, DENIED, UNAUTH),
    "UserApiKeyService.DeleteUserApiKey":             (OK,     DENIED, DENIED, DENIED, DENIED, DENIED, UNAUTH),
    # Teams (R25): Owners and Admins change them and their members; Members read them.
    "TeamService.CreateTeam":                         (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "TeamService.GetTeam":                            (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),
    "TeamService.ListTeams":                          (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),
    "TeamService.UpdateTeam":                         (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "TeamService.DeleteTeam":                         (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "TeamService.AddTeamMembers":                     (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "TeamService.RemoveTeamMembers":                  (OK,     DENIED, DENIED, DENIED, DENIED, HIDDEN, UNAUTH),
    "TeamService.ListTeamMembers":                    (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),
    "TeamService.ListSubjectTeams":                   (OK,     OK,     OK,     OK,     OK,     HIDDEN, UNAUTH),
    # Object ACLs (R26, R27): whoever holds manage_acls in the workspace (Admins, its Owners)
    # writes them; whoever may see the object (here: listed on its ACL) or holds manage_acls
    # reads one. mia has no role in the workspace.
    "AclService.SetAcl":                              (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
    "AclService.GetAcl":                              (OK,     DENIED, OK,     OK,     OK,     HIDDEN, UNAUTH),
    "AclService.ListAcls":                            (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
    "AclService.ClearAcl":                            (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
    "AclService.SetDeploymentWorkPool":               (OK,     DENIED, OK,     DENIED, DENIED, HIDDEN, UNAUTH),
}
# fmt: on

MANAGEMENT_SERVICES = {
    **{name: getattr(mpbg, f"{name}Stub") for name in mpb.DESCRIPTOR.services_by_name},
    **{name: getattr(ipbg, f"{name}Stub") for name in ipb.DESCRIPTOR.services_by_name},
    **{name: getattr(spbg, f"{name}Stub") for name in spb.DESCRIPTOR.services_by_name},
    **{name: getattr(upbg, f"{name}Stub") for name in upb.DESCRIPTOR.services_by_name},
    **{name: getattr(tpbg, f"{name}Stub") for name in tpb.DESCRIPTOR.services_by_name},
    **{name: getattr(xpbg, f"{name}Stub") for name in xpb.DESCRIPTOR.services_by_name},
}
DESCRIPTORS = [mpb.DESCRIPTOR, ipb.DESCRIPTOR, spb.DESCRIPTOR, upb.DESCRIPTOR, tpb.DESCRIPTOR, xpb.DESCRIPTOR]


# -- the world --------------------------------------------------------------------------------


@dataclass
class World:
    app: App
    channel: grpc.aio.Channel
    metadata: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    stubs: dict[str, Any] = field(default_factory=dict)
    _n: Any = field(default_factory=itertools.count)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self._n)}"

    def call(self, actor: str, rpc: str, request: Any) -> Awaitable[Any]:
        service, method = rpc.split(".")
        return getattr(self.stubs[service], method)(request, metadata=self.metadata[actor], timeout=15)

    def admin(self, rpc: str, request: Any) -> Awaitable[Any]:
        return self.call("admin", rpc, request)

    def revision(self) -> int:
        assert self.app.db is not None
        return head_revision(self.app.db)

    # Resources for one cell, made by the Admin.

    async def invitation(self, email: str = "", role: str = "Member") -> tuple[str, str, str]:
        """A pending invitation: (id, token, email)."""
        email = email or f"{self.fresh('invitee')}@example.test"
        r = await self.admin(
            "InvitationService.CreateInvitations",
            ipb.CreateInvitationsRequest(organization="acme", emails=[email], org_role=role),
        )
        result = r.results[0]
        assert result.outcome == ipb.INVITATION_OUTCOME_INVITED, result
        return result.invitation.id, result.token, email

    async def member(self, role: str = "Member") -> str:
        """A new member of acme with ``role``, joined through an invitation."""
        user = self.fresh("user")
        _, token, email = await self.invitation(f"{user}@example.test", role)
        self.metadata[user] = [("authorization", f"Bearer {TOKEN}"), ("x-orgauthz-actor", f"user:{user}")]
        await self.call(
            user, "InvitationService.AcceptInvitation", ipb.AcceptInvitationRequest(token=token, email=email)
        )
        return user

    async def grant(self, workspace: str, subject: str, role: str) -> None:
        await self.admin(
            "AccessService.GrantWorkspaceAccess",
            mpb.GrantWorkspaceAccessRequest(workspace=workspace, subject=subject, role=role),
        )

    async def workspace(self) -> str:
        """A new workspace where owen is Owner and dev and ci are Developers."""
        ws = self.fresh("ws")
        await self.admin(
            "WorkspaceService.CreateWorkspace", mpb.CreateWorkspaceRequest(organization="acme", id=ws, handle=ws)
        )
        await self.grant(ws, "user:owen", "Owner")
        await self.grant(ws, "user:dev", "Developer")
        await self.grant(ws, "service_account:ci", "Developer")
        return ws

    async def role(self) -> str:
        role = self.fresh("role")
        await self.admin(
            "RoleService.CreateRole",
            mpb.CreateRoleRequest(organization="acme", id=role, name=role, level="workspace", scopes=["see_flows"]),
        )
        return role

    async def team(self) -> str:
        team = self.fresh("team")
        await self.admin("TeamService.CreateTeam", tpb.CreateTeamRequest(organization="acme", id=team, name=team))
        await self.admin(
            "TeamService.AddTeamMembers", tpb.AddTeamMembersRequest(organization="acme", id=team, subjects=["user:dev"])
        )
        return team

    async def acl(self, obj: str) -> int:
        """An ACL on ``obj`` in the workspace listing dev and ci at view; its revision."""
        entries = [xpb.AclEntry(subject=s, level="view") for s in ("user:dev", "service_account:ci")]
        r = await self.admin("AclService.SetAcl", xpb.SetAclRequest(workspace=WS, object=obj, entries=entries))
        return int(r.acl.revision)

    async def service_account(self) -> str:
        sa = self.fresh("sa")
        await self.admin(
            "ServiceAccountService.CreateServiceAccount",
            spb.CreateServiceAccountRequest(organization="acme", id=sa, name=sa),
        )
        return sa


async def _build(app: App, channel: grpc.aio.Channel) -> World:
    w = World(app=app, channel=channel)
    w.stubs = {name: stub(channel) for name, stub in MANAGEMENT_SERVICES.items()}
    caller = [("authorization", f"Bearer {TOKEN}")]
    for actor, user in [
        ("admin", "ada"),
        ("member", "mia"),
        ("owner", "owen"),
        ("developer", "dev"),
        ("other_org_admin", "eve"),
    ]:
        w.metadata[actor] = [*caller, ("x-orgauthz-actor", f"user:{user}")]
    w.metadata["unauthenticated"] = [("x-orgauthz-actor", "user:ada")]
    platform = [*caller]
    orgs = w.stubs["OrganizationService"]
    await orgs.CreateOrganization(
        mpb.CreateOrganizationRequest(
            id="acme", handle="acme", name="Acme", admin_user_id="ada", admin_email="ada@acme.test", limits=BIG
        ),
        metadata=platform,
    )
    await orgs.CreateOrganization(
        mpb.CreateOrganizationRequest(
            id="other", handle="other", name="Other", admin_user_id="eve", admin_email="eve@other.test"
        ),
        metadata=platform,
    )
    for actor, user in [("member", "mia"), ("owner", "owen"), ("developer", "dev")]:
        _, token, email = await w.invitation(f"{user}@acme.test")
        await w.call(actor, "InvitationService.AcceptInvitation", ipb.AcceptInvitationRequest(token=token, email=email))
    created = await w.admin(
        "ServiceAccountService.CreateServiceAccount",
        spb.CreateServiceAccountRequest(organization="acme", id="ci", name="CI"),
    )
    w.metadata["service_account"] = [*caller, ("x-orgauthz-api-key", created.api_key)]
    await w.admin(
        "WorkspaceService.CreateWorkspace",
        mpb.CreateWorkspaceRequest(organization="acme", id=WS, handle=WS, name="Production"),
    )
    await w.grant(WS, "user:owen", "Owner")
    await w.grant(WS, "user:dev", "Developer")
    await w.grant(WS, "service_account:ci", "Developer")
    await w.admin(
        "RoleService.CreateRole",
        mpb.CreateRoleRequest(
            organization="acme",
            id="auditor",
            name="Auditor",
            level="organization",
            inherits="Member",
            scopes=["read:audit_event"],
        ),
    )
    await w.admin(
        "RoleService.CreateRole",
        mpb.CreateRoleRequest(
            organization="acme",
            id="people-manager",
            name="People manager",
            level="organization",
            inherits="Member",
            scopes=["create:invitation", "read:invitation", "update:account_membership", "delete:account_membership"],
        ),
    )
    w.metadata["delegate"] = [*caller, ("x-orgauthz-actor", "user:pam")]
    _, token, email = await w.invitation("pam@acme.test", role="people-manager")
    await w.call(
        "delegate", "InvitationService.AcceptInvitation", ipb.AcceptInvitationRequest(token=token, email=email)
    )
    await w.invitation("pending@example.test")
    await w.admin("TeamService.CreateTeam", tpb.CreateTeamRequest(organization="acme", id="core", name="Core"))
    await w.admin(
        "TeamService.AddTeamMembers", tpb.AddTeamMembersRequest(organization="acme", id="core", subjects=["user:dev"])
    )
    await w.acl(ACL_OBJECT)
    return w


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(pg: PgCluster) -> AsyncIterator[World]:
    name = f"matrix_{os.getpid()}"
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg.psql(f"CREATE DATABASE {name} TEMPLATE orgauthz_template")
    app = App(settings_for(pg.url(name), insecure_dev=False, auth_token=TOKEN))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield await _build(app, channel)
    finally:
        await app.stop(0)
        pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- one valid request per RPC, with the cell's own resources where the call changes them --------

Prepare = Callable[[World], Awaitable[Any]]


async def _create_org(w: World) -> Any:
    org = w.fresh("org")
    return mpb.CreateOrganizationRequest(id=org, handle=org, name=org, admin_user_id=w.fresh("founder"))


async def _create_ws(w: World) -> Any:
    ws = w.fresh("new-ws")
    return mpb.CreateWorkspaceRequest(organization="acme", id=ws, handle=ws)


async def _delete_ws(w: World) -> Any:
    return mpb.DeleteWorkspaceRequest(workspace=await w.workspace())


async def _default_role(w: World) -> Any:
    return mpb.SetDefaultRoleRequest(workspace=await w.workspace(), role="Viewer")


async def _change_member(w: World) -> Any:
    return mpb.ChangeMemberRoleRequest(organization="acme", user_id=await w.member(), role="auditor")


async def _remove_member(w: World) -> Any:
    return mpb.RemoveMemberRequest(organization="acme", user_id=await w.member())


async def _grant(w: World) -> Any:
    return mpb.GrantWorkspaceAccessRequest(workspace=WS, subject=f"user:{await w.member()}", role="Viewer")


async def _member_with_access(w: World) -> str:
    subject = f"user:{await w.member()}"
    await w.grant(WS, subject, "Viewer")
    return subject


async def _change_access(w: World) -> Any:
    return mpb.ChangeWorkspaceAccessRequest(workspace=WS, subject=await _member_with_access(w), role="Runner")


async def _revoke_access(w: World) -> Any:
    return mpb.RevokeWorkspaceAccessRequest(workspace=WS, subject=await _member_with_access(w))


async def _create_role(w: World) -> Any:
    role = w.fresh("role")
    return mpb.CreateRoleRequest(
        organization="acme", id=role, name=role, level="workspace", inherits="Viewer", scopes=["run_deployments"]
    )


async def _update_role(w: World) -> Any:
    return mpb.UpdateRoleRequest(
        organization="acme", role=await w.role(), name="Renamed", scopes=["see_flows", "see_deployments"]
    )


async def _delete_role(w: World) -> Any:
    return mpb.DeleteRoleRequest(organization="acme", role=await w.role())


async def _invite(w: World) -> Any:
    return ipb.CreateInvitationsRequest(
        organization="acme", emails=[f"{w.fresh('new')}@example.test"], org_role="Member"
    )


async def _get_invitation(w: World) -> Any:
    r = await w.admin(
        "InvitationService.ListInvitations",
        ipb.ListInvitationsRequest(organization="acme", status=ipb.INVITATION_STATUS_PENDING, page_size=1),
    )
    return ipb.GetInvitationRequest(organization="acme", id=r.invitations[0].id)


async def _revoke_invitation(w: World) -> Any:
    return ipb.RevokeInvitationRequest(organization="acme", id=(await w.invitation())[0])


async def _resend_invitation(w: World) -> Any:
    return ipb.ResendInvitationRequest(organization="acme", id=(await w.invitation())[0])


async def _accept(w: World) -> Any:
    _, token, email = await w.invitation()
    return ipb.AcceptInvitationRequest(token=token, email=email)


async def _reject(w: World) -> Any:
    _, token, email = await w.invitation()
    return ipb.RejectInvitationRequest(token=token, email=email)


async def _create_sa(w: World) -> Any:
    return spb.CreateServiceAccountRequest(organization="acme", name=w.fresh("bot"))


async def _rotate(w: World) -> Any:
    return spb.RotateServiceAccountKeyRequest(
        organization="acme", id=await w.service_account(), grace_period_seconds=3600
    )


async def _delete_sa(w: World) -> Any:
    return spb.DeleteServiceAccountRequest(organization="acme", id=await w.service_account())


async def _update_ws(w: World) -> Any:
    return mpb.UpdateWorkspaceRequest(workspace=await w.workspace(), name="Renamed", description="what it is for")


async def _update_sa(w: World) -> Any:
    return spb.UpdateServiceAccountRequest(organization="acme", id=await w.service_account(), name=w.fresh("renamed"))


# RPCs that act on the actor itself: each column that would change its own standing acts as a
# fresh actor of its kind, so the other cells keep their actors.
async def _fresh_admin(w: World) -> str:
    return await w.member("Admin")


async def _fresh_in_ws(w: World, role: str) -> str:
    user = await w.member()
    await w.grant(WS, f"user:{user}", role)
    return user


SELF: dict[str, dict[str, Callable[[World], Awaitable[str]]]] = {
    "MemberService.LeaveOrganization": {
        "admin": _fresh_admin,
        "member": lambda w: w.member(),
        "owner": lambda w: _fresh_in_ws(w, "Owner"),
        "developer": lambda w: _fresh_in_ws(w, "Developer"),
    },
}


async def _delete_user_key(w: World) -> Any:
    made = await w.admin(
        "UserApiKeyService.CreateUserApiKey", upb.CreateUserApiKeyRequest(user_id="ada", name=w.fresh("key"))
    )
    return upb.DeleteUserApiKeyRequest(user_id="ada", id=made.key.id)


async def _create_team(w: World) -> Any:
    team = w.fresh("new-team")
    return tpb.CreateTeamRequest(organization="acme", id=team, name=team)


async def _update_team(w: World) -> Any:
    team = await w.team()
    return tpb.UpdateTeamRequest(organization="acme", id=team, name=w.fresh("renamed"))


async def _delete_team(w: World) -> Any:
    return tpb.DeleteTeamRequest(organization="acme", id=await w.team())


async def _add_team_members(w: World) -> Any:
    return tpb.AddTeamMembersRequest(organization="acme", id=await w.team(), subjects=["user:mia"])


async def _remove_team_members(w: World) -> Any:
    return tpb.RemoveTeamMembersRequest(organization="acme", id=await w.team(), subjects=["user:dev"])


async def _set_acl(w: World) -> Any:
    entries = [xpb.AclEntry(subject="user:mia", level="run")]
    return xpb.SetAclRequest(workspace=WS, object=f"deployment:{w.fresh('d')}", entries=entries)


async def _clear_acl(w: World) -> Any:
    obj = f"work_pool:{w.fresh('p')}"
    return xpb.ClearAclRequest(workspace=WS, object=obj, expected_revision=await w.acl(obj))


async def _set_pool(w: World) -> Any:
    return xpb.SetDeploymentWorkPoolRequest(workspace=WS, deployment=w.fresh("d"), work_pool="pool")


def _fixed(request: Any) -> Prepare:
    async def prepare(_: World) -> Any:
        return request

    return prepare


REQUESTS: dict[str, Prepare] = {
    "OrganizationService.CreateOrganization": _create_org,
    "OrganizationService.UpdateOrganization": _fixed(mpb.UpdateOrganizationRequest(organization="acme", name="Acme")),
    "OrganizationService.ListMyOrganizations": _fixed(mpb.ListMyOrganizationsRequest(page_size=10)),
    "OrganizationService.GetOrganization": _fixed(mpb.GetOrganizationRequest(organization="acme")),
    "OrganizationService.UpdateOrganizationLimits": _fixed(
        mpb.UpdateOrganizationLimitsRequest(organization="acme", limits=BIG)
    ),
    "WorkspaceService.CreateWorkspace": _create_ws,
    "WorkspaceService.ListWorkspaces": _fixed(mpb.ListWorkspacesRequest(organization="acme", page_size=10)),
    "WorkspaceService.GetWorkspace": _fixed(mpb.GetWorkspaceRequest(workspace=WS)),
    "WorkspaceService.DeleteWorkspace": _delete_ws,
    "WorkspaceService.SetDefaultRole": _default_role,
    "WorkspaceService.UpdateWorkspace": _update_ws,
    "MemberService.ListMembers": _fixed(mpb.ListMembersRequest(organization="acme")),
    "MemberService.ChangeMemberRole": _change_member,
    "MemberService.RemoveMember": _remove_member,
    "MemberService.LeaveOrganization": _fixed(mpb.LeaveOrganizationRequest(organization="acme")),
    "AccessService.GrantWorkspaceAccess": _grant,
    "AccessService.ChangeWorkspaceAccess": _change_access,
    "AccessService.RevokeWorkspaceAccess": _revoke_access,
    "AccessService.ListWorkspaceAccess": _fixed(mpb.ListWorkspaceAccessRequest(workspace=WS)),
    "RoleService.ListRoles": _fixed(mpb.ListRolesRequest(organization="acme")),
    "RoleService.CreateRole": _create_role,
    "RoleService.UpdateRole": _update_role,
    "RoleService.DeleteRole": _delete_role,
    "RoleService.ListScopes": _fixed(mpb.ListScopeCatalogRequest(level="workspace")),
    "AuditService.ListAuditEvents": _fixed(mpb.ListAuditEventsRequest(organization="acme", page_size=5)),
    "InvitationService.CreateInvitations": _invite,
    "InvitationService.ListInvitations": _fixed(ipb.ListInvitationsRequest(organization="acme")),
    "InvitationService.GetInvitation": _get_invitation,
    "InvitationService.RevokeInvitation": _revoke_invitation,
    "InvitationService.ResendInvitation": _resend_invitation,
    "InvitationService.AcceptInvitation": _accept,
    "InvitationService.RejectInvitation": _reject,
    "ServiceAccountService.CreateServiceAccount": _create_sa,
    "ServiceAccountService.ListServiceAccounts": _fixed(spb.ListServiceAccountsRequest(organization="acme")),
    "ServiceAccountService.GetServiceAccount": _fixed(spb.GetServiceAccountRequest(organization="acme", id="ci")),
    "ServiceAccountService.RotateServiceAccountKey": _rotate,
    "ServiceAccountService.DeleteServiceAccount": _delete_sa,
    "ServiceAccountService.UpdateServiceAccount": _update_sa,
    "UserApiKeyService.CreateUserApiKey": _fixed(upb.CreateUserApiKeyRequest(user_id="ada", name="laptop")),
    "UserApiKeyService.ListUserApiKeys": _fixed(upb.ListUserApiKeysRequest(user_id="ada")),
    "UserApiKeyService.DeleteUserApiKey": _delete_user_key,
    "TeamService.CreateTeam": _create_team,
    "TeamService.GetTeam": _fixed(tpb.GetTeamRequest(organization="acme", id="core")),
    "TeamService.ListTeams": _fixed(tpb.ListTeamsRequest(organization="acme")),
    "TeamService.UpdateTeam": _update_team,
    "TeamService.DeleteTeam": _delete_team,
    "TeamService.AddTeamMembers": _add_team_members,
    "TeamService.RemoveTeamMembers": _remove_team_members,
    "TeamService.ListTeamMembers": _fixed(tpb.ListTeamMembersRequest(organization="acme", id="core")),
    "TeamService.ListSubjectTeams": _fixed(tpb.ListSubjectTeamsRequest(organization="acme", subject="user:dev")),
    "AclService.SetAcl": _set_acl,
    "AclService.GetAcl": _fixed(xpb.GetAclRequest(workspace=WS, object=ACL_OBJECT)),
    "AclService.ListAcls": _fixed(xpb.ListAclsRequest(workspace=WS, kind="deployment", page_size=5)),
    "AclService.ClearAcl": _clear_acl,
    "AclService.SetDeploymentWorkPool": _set_pool,
}

CELLS = [(rpc, actor, expected) for rpc, row in MATRIX.items() for actor, expected in zip(ACTORS, row, strict=True)]


# -- the tests --------------------------------------------------------------------------------


def test_the_matrix_covers_every_management_rpc() -> None:
    rpcs = {f"{s.name}.{m.name}" for d in DESCRIPTORS for s in d.services_by_name.values() for m in s.methods}
    assert set(MATRIX) == rpcs
    assert set(REQUESTS) == rpcs


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("rpc", "actor", "expected"), CELLS, ids=[f"{r.split('.')[1]}-{a}" for r, a, _ in CELLS])
async def test_permission_matrix(world: World, rpc: str, actor: str, expected: grpc.StatusCode) -> None:
    request = await REQUESTS[rpc](world)
    acting = await SELF[rpc][actor](world) if actor in SELF.get(rpc, {}) else actor
    before = world.revision()
    try:
        await world.call(acting, rpc, request)
        got, details = OK, ""
    except grpc.aio.AioRpcError as exc:
        got, details = exc.code(), exc.details() or ""
    assert got == expected, f"{rpc} as {actor}: expected {expected.name}, got {got.name} ({details})"
    if got != OK:
        assert world.revision() == before, f"{rpc} as {actor} was refused but wrote something"
    if rpc == "InvitationService.AcceptInvitation" and got == OK:
        # The outsider joined acme; take them out again so the other cells keep seeing an outsider.
        await world.admin(
            "MemberService.RemoveMember",
            mpb.RemoveMemberRequest(organization="acme", user_id=world.metadata[actor][1][1].partition(":")[2]),
        )


# -- R8: the Admin role is given and taken only by Admins -------------------------------------
#
# ``pam`` holds a custom organization role with every people-managing permission
# (create:invitation, update:account_membership, delete:account_membership): she manages
# Members, but anything that makes or touches an Admin stays with Admins.


async def _invite_as(w: World, role: str) -> Any:
    return ipb.CreateInvitationsRequest(organization="acme", emails=[f"{w.fresh('r8')}@example.test"], org_role=role)


async def _change(w: World, before: str, after: str) -> Any:
    return mpb.ChangeMemberRoleRequest(organization="acme", user_id=await w.member(before), role=after)


async def _remove(w: World, role: str) -> Any:
    return mpb.RemoveMemberRequest(organization="acme", user_id=await w.member(role))


# case: (rpc, request, Admin, people manager)
R8_CASES: dict[str, tuple[str, Prepare, C, C]] = {
    "invite as Member": ("InvitationService.CreateInvitations", lambda w: _invite_as(w, "Member"), OK, OK),
    "invite as Admin": ("InvitationService.CreateInvitations", lambda w: _invite_as(w, "Admin"), OK, DENIED),
    "give a Member a custom role": (
        "MemberService.ChangeMemberRole",
        lambda w: _change(w, "Member", "auditor"),
        OK,
        OK,
    ),
    "make a Member an Admin": ("MemberService.ChangeMemberRole", lambda w: _change(w, "Member", "Admin"), OK, DENIED),
    "demote an Admin": ("MemberService.ChangeMemberRole", lambda w: _change(w, "Admin", "Member"), OK, DENIED),
    "remove a Member": ("MemberService.RemoveMember", lambda w: _remove(w, "Member"), OK, OK),
    "remove an Admin": ("MemberService.RemoveMember", lambda w: _remove(w, "Admin"), OK, DENIED),
}
R8_CELLS = [
    (case, actor, expected)
    for case, (_, _, *row) in R8_CASES.items()
    for actor, expected in zip(("admin", "delegate"), row, strict=True)
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("case", "actor", "expected"), R8_CELLS, ids=[f"{c}-{a}" for c, a, _ in R8_CELLS])
async def test_r8_only_admins_give_or_touch_the_admin_role(
    world: World, case: str, actor: str, expected: grpc.StatusCode
) -> None:
    rpc, prepare, *_ = R8_CASES[case]
    request = await prepare(world)
    before = world.revision()
    try:
        await world.call(actor, rpc, request)
        got, details = OK, ""
    except grpc.aio.AioRpcError as exc:
        got, details = exc.code(), exc.details() or ""
    assert got == expected, f"{case} as {actor}: expected {expected.name}, got {got.name} ({details})"
    if got != OK:
        assert world.revision() == before
