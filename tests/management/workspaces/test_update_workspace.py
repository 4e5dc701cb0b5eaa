"""UpdateWorkspace (R15: name, handle and description can all be changed) and which field a
taken id or handle is, on CreateWorkspace and UpdateWorkspace."""

from __future__ import annotations

import grpc
from google.protobuf.json_format import MessageToDict

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from tests.management.support import As, add_member, code, create_org, error, head

C = grpc.StatusCode


async def _acme_with_workspaces(channel) -> As:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    for ws in ("w", "v"):
        await alice.workspaces.CreateWorkspace(
            pb.CreateWorkspaceRequest(organization="acme", id=ws, handle=ws, name=ws.upper(), description="first")
        )
    return alice


async def test_r15_name_handle_and_description_can_all_be_changed(app: App, channel) -> None:
    alice = await _acme_with_workspaces(channel)
    got = await alice.workspaces.GetWorkspace(pb.GetWorkspaceRequest(workspace="w"))
    assert got.workspace.description == "first"
    before = head(app)
    r = await alice.workspaces.UpdateWorkspace(
        pb.UpdateWorkspaceRequest(workspace="w", name="Production", handle="prod", description="  Where it runs  ")
    )
    assert r.revision == head(app) > before
    assert (r.workspace.id, r.workspace.organization) == ("w", "acme")
    assert (r.workspace.name, r.workspace.handle, r.workspace.description) == ("Production", "prod", "Where it runs")
    got = await alice.workspaces.GetWorkspace(pb.GetWorkspaceRequest(workspace="w"))
    assert got.workspace == r.workspace
    # Empty name and handle and an unset description keep their values; a set empty
    # description clears it.
    r = await alice.workspaces.UpdateWorkspace(pb.UpdateWorkspaceRequest(workspace="w", name="Prod"))
    assert (r.workspace.name, r.workspace.handle, r.workspace.description) == ("Prod", "prod", "Where it runs")
    r = await alice.workspaces.UpdateWorkspace(pb.UpdateWorkspaceRequest(workspace="w", description=""))
    assert (r.workspace.name, r.workspace.handle, r.workspace.description) == ("Prod", "prod", "")
    # The old handle is free again; listing orders by the new one.
    await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w2", handle="w"))
    listed = await alice.workspaces.ListWorkspaces(pb.ListWorkspacesRequest(organization="acme"))
    assert [(x.id, x.handle) for x in listed.workspaces] == [("w", "prod"), ("v", "v"), ("w2", "w")]


async def test_r15_a_handle_taken_in_the_organization_is_already_exists_naming_handle(app: App, channel) -> None:
    alice = await _acme_with_workspaces(channel)
    before = head(app)
    taken = await error(alice.workspaces.UpdateWorkspace(pb.UpdateWorkspaceRequest(workspace="w", handle="v")))
    assert taken.code() == C.ALREADY_EXISTS
    assert (taken.details() or "").startswith("handle:"), taken.details()
    assert head(app) == before
    # Its own handle is not "taken".
    r = await alice.workspaces.UpdateWorkspace(pb.UpdateWorkspaceRequest(workspace="w", handle="w", name="Same"))
    assert (r.workspace.handle, r.workspace.name) == ("w", "Same")
    # A handle another organization uses is free here.
    await create_org(channel, "globex", "gina")
    gina = As.of(channel, "user:gina")
    await gina.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="globex", id="g", handle="shared"))
    r = await alice.workspaces.UpdateWorkspace(pb.UpdateWorkspaceRequest(workspace="w", handle="shared"))
    assert r.workspace.handle == "shared"


async def test_create_workspace_already_exists_names_the_id_or_the_handle(app: App, channel) -> None:
    alice = await _acme_with_workspaces(channel)
    await create_org(channel, "globex", "gina")
    gina = As.of(channel, "user:gina")
    before = head(app)
    handle = await error(
        alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="new", handle="w"))
    )
    assert handle.code() == C.ALREADY_EXISTS
    assert (handle.details() or "").startswith("handle:"), handle.details()
    ident = await error(
        alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="fresh"))
    )
    assert ident.code() == C.ALREADY_EXISTS
    assert (ident.details() or "").startswith("id:"), ident.details()
    # An id is unique across organizations: another organization's id clash is the id too.
    other = await error(
        gina.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="globex", id="w", handle="fresh"))
    )
    assert other.code() == C.ALREADY_EXISTS
    assert (other.details() or "").startswith("id:"), other.details()
    assert head(app) == before


async def test_update_workspace_is_audited_with_before_and_after(app: App, channel) -> None:
    alice = await _acme_with_workspaces(channel)
    r = await alice.workspaces.UpdateWorkspace(pb.UpdateWorkspaceRequest(workspace="w", handle="prod"))
    events = await alice.audit.ListAuditEvents(
        pb.ListAuditEventsRequest(organization="acme", event="orgauthz.workspace.updated")
    )
    [event] = events.events
    assert (event.actor, event.target, event.workspace, event.revision) == (
        "user:alice",
        "workspace:w",
        "w",
        r.revision,
    )
    assert MessageToDict(event.details) == {
        "from": {"name": "W", "handle": "w", "description": "first"},
        "to": {"name": "W", "handle": "prod", "description": "first"},
    }


async def test_update_workspace_needs_update_workspace_or_manage_workspace_settings(app: App, channel) -> None:
    alice = await _acme_with_workspaces(channel)
    for user in ("bob", "dora", "owen"):
        await add_member(app, "acme", user)
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:dora", role="Developer")
    )
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:owen", role="Owner")
    )
    before = head(app)
    for user in ("bob", "dora"):
        req = pb.UpdateWorkspaceRequest(workspace="w", name="Mine")
        assert await code(As.of(channel, f"user:{user}").workspaces.UpdateWorkspace(req)) == C.PERMISSION_DENIED, user
    assert head(app) == before
    # The workspace's Owner holds manage_workspace_settings there, and only there.
    owen = As.of(channel, "user:owen")
    r = await owen.workspaces.UpdateWorkspace(pb.UpdateWorkspaceRequest(workspace="w", description="owned"))
    assert r.workspace.description == "owned"
    assert await code(owen.workspaces.UpdateWorkspace(pb.UpdateWorkspaceRequest(workspace="v", name="x"))) == (
        C.PERMISSION_DENIED
    )


async def test_update_workspace_of_another_organization_is_not_found(app: App, channel) -> None:
    await _acme_with_workspaces(channel)
    await create_org(channel, "globex", "gina")
    gina = As.of(channel, "user:gina")
    for ws in ("w", "nope"):
        assert await code(gina.workspaces.UpdateWorkspace(pb.UpdateWorkspaceRequest(workspace=ws, name="x"))) == (
            C.NOT_FOUND
        )
