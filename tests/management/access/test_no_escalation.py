"""R16 strictly and R28 (no escalation), as a permission matrix over gRPC.

The organization: alice (Admin); a workspace ``w1`` with no default role where ``owner`` is
a built-in Owner, ``keeper`` holds a custom workspace role with only
``manage_workspace_users``, ``setter`` another custom workspace role with only
``manage_workspace_users`` (which also sets the default role, R17), and ``dev`` is a Developer;
``wsadmin`` holds a custom organization role with ``administrate:workspace`` and
``create:account_role`` and is a Developer in
``w1`` (so R28 alone would let it give Viewer there: R16 must refuse); ``carol`` is a plain
Member. Each row is a call and the outcome SPEC §1 gives it;
a rule broken in the services fails its row.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from tests.management.support import As, add_member, code, create_org

C = grpc.StatusCode
OK, DENIED = C.OK, C.PERMISSION_DENIED


async def _setup(app: App, channel: grpc.aio.Channel) -> As:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme", id="keeper", name="Keeper", level="workspace", scopes=["manage_workspace_users"]
        )
    )
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme", id="setter", name="Setter", level="workspace", scopes=["manage_workspace_users"]
        )
    )
    await alice.roles.CreateRole(
        pb.CreateRoleRequest(
            organization="acme",
            id="ws-admin",
            name="Workspace admin",
            level="organization",
            inherits="Member",
            scopes=["administrate:workspace", "create:account_role", "update:account_role"],
        )
    )
    for user in ("owner", "keeper", "setter", "dev", "carol"):
        await add_member(app, "acme", user)
    await add_member(app, "acme", "wsadmin", role="ws-admin")
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w1", handle="w1"))
    grants = (
        ("owner", "Owner"),
        ("keeper", "keeper"),
        ("setter", "setter"),
        ("dev", "Developer"),
        ("wsadmin", "Developer"),
    )
    for user, role in grants:
        await alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace="w1", subject=f"user:{user}", role=role)
        )
    return alice


def _grant(subject: str, role: str) -> Any:
    return pb.GrantWorkspaceAccessRequest(workspace="w1", subject=subject, role=role)


def _change(subject: str, role: str) -> Any:
    return pb.ChangeWorkspaceAccessRequest(workspace="w1", subject=subject, role=role)


def _revoke(subject: str) -> Any:
    return pb.RevokeWorkspaceAccessRequest(workspace="w1", subject=subject)


# (actor, call, request, expected): run in order on one organization.
MATRIX: list[tuple[str, str, Any, C]] = [
    # R28: a custom role holding only manage_workspace_users cannot make anyone, itself included, an Owner...
    ("keeper", "ChangeWorkspaceAccess", _change("user:keeper", "Owner"), DENIED),
    ("keeper", "GrantWorkspaceAccess", _grant("user:carol", "Owner"), DENIED),
    # ...nor give any role holding a scope it does not hold itself
    ("keeper", "GrantWorkspaceAccess", _grant("user:carol", "Viewer"), DENIED),
    ("keeper", "RevokeWorkspaceAccess", _revoke("user:dev"), DENIED),  # Developer holds more than it
    ("keeper", "RevokeWorkspaceAccess", _revoke("user:keeper"), DENIED),  # its own access
    # R16: an organization permission of a custom role (administrate:workspace) grants no workspace access
    ("wsadmin", "GrantWorkspaceAccess", _grant("user:carol", "Owner"), DENIED),
    ("wsadmin", "GrantWorkspaceAccess", _grant("user:carol", "Viewer"), DENIED),  # within its Developer scopes
    ("wsadmin", "RevokeWorkspaceAccess", _revoke("user:setter"), DENIED),  # ditto
    ("wsadmin", "ChangeWorkspaceAccess", _change("user:dev", "Owner"), DENIED),
    ("wsadmin", "RevokeWorkspaceAccess", _revoke("user:dev"), DENIED),
    # R28: nobody but Owners and Admins defines or changes a custom role
    (
        "wsadmin",
        "CreateRole",
        pb.CreateRoleRequest(organization="acme", id="flows", name="Flows", level="workspace", scopes=["manage_flows"]),
        DENIED,
    ),
    (
        "wsadmin",
        "UpdateRole",
        pb.UpdateRoleRequest(
            organization="acme", role="keeper", name="Keeper", scopes=["manage_workspace_users", "manage_flows"]
        ),
        DENIED,
    ),
    # a workspace Owner: roles within its own scopes, never its own access
    ("owner", "GrantWorkspaceAccess", _grant("user:carol", "Viewer"), OK),
    ("owner", "ChangeWorkspaceAccess", _change("user:carol", "Developer"), OK),
    ("owner", "ChangeWorkspaceAccess", _change("user:owner", "Viewer"), DENIED),
    ("owner", "RevokeWorkspaceAccess", _revoke("user:owner"), DENIED),
    ("owner", "RevokeWorkspaceAccess", _revoke("user:carol"), OK),
    # R28 and the default role: only a role within the setter's own scopes there
    ("setter", "SetDefaultRole", pb.SetDefaultRoleRequest(workspace="w1", role="Viewer"), DENIED),
    ("setter", "SetDefaultRole", pb.SetDefaultRoleRequest(workspace="w1", role=""), OK),  # No Access
    ("owner", "SetDefaultRole", pb.SetDefaultRoleRequest(workspace="w1", role="Viewer"), OK),
    ("dev", "SetDefaultRole", pb.SetDefaultRoleRequest(workspace="w1", role="Developer"), DENIED),  # no permission
    # organization Admins are not limited (R2), their own access included
    ("alice", "GrantWorkspaceAccess", _grant("user:alice", "Owner"), OK),
    ("alice", "ChangeWorkspaceAccess", _change("user:keeper", "Owner"), OK),
    ("alice", "RevokeWorkspaceAccess", _revoke("user:alice"), OK),
]

_SERVICE = {
    "GrantWorkspaceAccess": "access",
    "ChangeWorkspaceAccess": "access",
    "RevokeWorkspaceAccess": "access",
    "SetDefaultRole": "workspaces",
    "CreateRole": "roles",
    "UpdateRole": "roles",
}


async def test_r16_r28_permission_matrix(app: App, channel: grpc.aio.Channel) -> None:
    await _setup(app, channel)
    got = []
    for actor, call, request, _ in MATRIX:
        stub = getattr(As.of(channel, f"user:{actor}"), _SERVICE[call])
        got.append(await code(getattr(stub, call)(request)))
    want = [expected for *_, expected in MATRIX]
    wrong = [(row[:2], g) for row, g, w in zip(MATRIX, got, want, strict=True) if g != w]
    assert not wrong, wrong


@pytest.mark.parametrize("role", ["Owner", "Developer"])
async def test_r28_a_keeper_gains_nothing_by_granting_itself(app: App, channel: grpc.aio.Channel, role: str) -> None:
    """The escalation an outside client found: the keeper's own grant stays what it was."""
    alice = await _setup(app, channel)
    keeper = As.of(channel, "user:keeper")
    assert await code(keeper.access.ChangeWorkspaceAccess(_change("user:keeper", role))) == DENIED
    listed = await alice.access.ListWorkspaceAccess(pb.ListWorkspaceAccessRequest(workspace="w1"))
    assert {a.subject: a.role for a in listed.access}["user:keeper"] == "keeper"


async def test_r28_no_escalation_through_a_service_account(app: App, channel: grpc.aio.Channel) -> None:
    """A member who may create or update service accounts gives one only a role whose
    permissions it holds itself: the account's key would otherwise act with more."""
    from orgauthz.v1 import service_accounts_pb2 as spb
    from orgauthz.v1 import service_accounts_pb2_grpc as spbg

    await create_org(channel)
    alice = As.of(channel, "user:alice")
    for role_id, scopes in (
        ("sa-keeper", ["create:service_account", "update:service_account"]),
        ("auditor", ["read:audit_event"]),
    ):
        await alice.roles.CreateRole(
            pb.CreateRoleRequest(
                organization="acme", id=role_id, name=role_id, level="organization", inherits="Member", scopes=scopes
            )
        )
    await add_member(app, "acme", "sam", role="sa-keeper")
    sas = spbg.ServiceAccountServiceStub(channel)
    sam, admin = [("x-orgauthz-actor", "user:sam")], [("x-orgauthz-actor", "user:alice")]

    def create(sa_id: str, role: str) -> Any:
        return spb.CreateServiceAccountRequest(organization="acme", id=sa_id, name=sa_id, org_role=role)

    assert await code(sas.CreateServiceAccount(create("reader", "auditor"), metadata=sam)) == DENIED
    assert await code(sas.CreateServiceAccount(create("plain", "Member"), metadata=sam)) == OK
    promote = spb.UpdateServiceAccountRequest(organization="acme", id="plain", org_role="auditor")
    assert await code(sas.UpdateServiceAccount(promote, metadata=sam)) == DENIED
    assert await code(sas.UpdateServiceAccount(promote, metadata=admin)) == OK  # Admins are not limited (R2)
    assert await code(sas.CreateServiceAccount(create("reader", "auditor"), metadata=admin)) == OK
