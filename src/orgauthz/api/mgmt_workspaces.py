"""``orgauthz.v1.WorkspaceService``: thin translation around :mod:`orgauthz.services.workspaces`."""

from __future__ import annotations

from typing import Any

import grpc

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.mgmt_organizations import timestamp
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.services import workspaces as svc
from orgauthz.services.context import Management
from orgauthz.store.models import Workspace
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import management_pb2_grpc as pb_grpc


def workspace(w: Workspace) -> pb.Workspace:
    return pb.Workspace(
        id=w.id,
        organization=w.org_id,
        handle=w.handle,
        name=w.name,
        default_role=w.default_role or "",
        create_time=timestamp(w.created_at),
        description=w.description or "",
    )


class WorkspaceServicer(pb_grpc.WorkspaceServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, management: Management) -> None:
        self.m = management

    @rpc
    async def CreateWorkspace(
        self, request: pb.CreateWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateWorkspaceResponse:
        actor = await resolve_actor(context, self.m)
        ws, rev = await svc.create_workspace(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            workspace_id=bounds.check_optional_id("id", request.id),
            handle=bounds.check_handle("handle", request.handle),
            name=bounds.check_name("name", request.name, required=False),
            default_role=bounds.check_optional_id("default_role", request.default_role),
            description=bounds.check_description("description", request.description),
        )
        return pb.CreateWorkspaceResponse(workspace=workspace(ws), revision=rev)

    @rpc
    async def ListWorkspaces(
        self, request: pb.ListWorkspacesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkspacesResponse:
        actor = await resolve_actor(context, self.m)
        rows, after = await svc.list_workspaces(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            page_size=bounds.check_page_size("page_size", request.page_size),
            after=bounds.decode_page_token("page_token", request.page_token),
        )
        return pb.ListWorkspacesResponse(
            workspaces=[workspace(w) for w in rows], next_page_token=bounds.encode_page_token(after) if after else ""
        )

    @rpc
    async def GetWorkspace(
        self, request: pb.GetWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkspaceResponse:
        actor = await resolve_actor(context, self.m)
        ws = await svc.get_workspace(self.m, actor, bounds.check_id("workspace", request.workspace))
        return pb.GetWorkspaceResponse(workspace=workspace(ws))

    @rpc
    async def DeleteWorkspace(
        self, request: pb.DeleteWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteWorkspaceResponse:
        actor = await resolve_actor(context, self.m)
        rev = await svc.delete_workspace(self.m, actor, bounds.check_id("workspace", request.workspace))
        return pb.DeleteWorkspaceResponse(revision=rev)

    @rpc
    async def SetDefaultRole(
        self, request: pb.SetDefaultRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetDefaultRoleResponse:
        actor = await resolve_actor(context, self.m)
        ws, rev = await svc.set_default_role(
            self.m,
            actor,
            bounds.check_id("workspace", request.workspace),
            bounds.check_optional_id("role", request.role),
        )
        return pb.SetDefaultRoleResponse(workspace=workspace(ws), revision=rev)

    @rpc
    async def UpdateWorkspace(
        self, request: pb.UpdateWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateWorkspaceResponse:
        actor = await resolve_actor(context, self.m)
        ws, rev = await svc.update_workspace(
            self.m,
            actor,
            bounds.check_id("workspace", request.workspace),
            name=bounds.check_name("name", request.name, required=False),
            handle=bounds.check_handle("handle", request.handle) if request.handle else "",
            description=(
                bounds.check_description("description", request.description)
                if request.HasField("description")
                else None
            ),
        )
        return pb.UpdateWorkspaceResponse(workspace=workspace(ws), revision=rev)


@register(pb.DESCRIPTOR.services_by_name["WorkspaceService"].full_name)
def _register(app: Any, server: grpc.aio.Server, management: Management) -> None:
    pb_grpc.add_WorkspaceServiceServicer_to_server(WorkspaceServicer(management), server)
