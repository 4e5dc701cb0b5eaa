"""``orgauthz.v1.AccessService``: thin translation around :mod:`orgauthz.services.access`."""

from __future__ import annotations

from typing import Any

import grpc

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.mgmt_organizations import timestamp
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.services import access as svc
from orgauthz.services.context import Management
from orgauthz.store.models import WorkspaceGrant
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import management_pb2_grpc as pb_grpc


def access(g: WorkspaceGrant) -> pb.WorkspaceAccess:
    return pb.WorkspaceAccess(
        workspace=g.workspace_id, subject=g.subject, role=g.role, create_time=timestamp(g.created_at)
    )


def _subject(value: str) -> str:
    kind, ident = bounds.check_grantee_subject("subject", value)
    return f"{kind}:{ident}"


class AccessServicer(pb_grpc.AccessServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, management: Management) -> None:
        self.m = management

    @rpc
    async def GrantWorkspaceAccess(
        self, request: pb.GrantWorkspaceAccessRequest, context: grpc.aio.ServicerContext
    ) -> pb.GrantWorkspaceAccessResponse:
        actor = await resolve_actor(context, self.m)
        g, rev = await svc.grant(
            self.m,
            actor,
            bounds.check_id("workspace", request.workspace),
            _subject(request.subject),
            bounds.check_id("role", request.role),
        )
        return pb.GrantWorkspaceAccessResponse(access=access(g), revision=rev)

    @rpc
    async def ChangeWorkspaceAccess(
        self, request: pb.ChangeWorkspaceAccessRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChangeWorkspaceAccessResponse:
        actor = await resolve_actor(context, self.m)
        g, rev = await svc.change(
            self.m,
            actor,
            bounds.check_id("workspace", request.workspace),
            _subject(request.subject),
            bounds.check_id("role", request.role),
        )
        return pb.ChangeWorkspaceAccessResponse(access=access(g), revision=rev)

    @rpc
    async def RevokeWorkspaceAccess(
        self, request: pb.RevokeWorkspaceAccessRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeWorkspaceAccessResponse:
        actor = await resolve_actor(context, self.m)
        rev = await svc.revoke(
            self.m, actor, bounds.check_id("workspace", request.workspace), _subject(request.subject)
        )
        return pb.RevokeWorkspaceAccessResponse(revision=rev)

    @rpc
    async def ListWorkspaceAccess(
        self, request: pb.ListWorkspaceAccessRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkspaceAccessResponse:
        actor = await resolve_actor(context, self.m)
        rows, after = await svc.list_access(
            self.m,
            actor,
            bounds.check_id("workspace", request.workspace),
            page_size=bounds.check_page_size("page_size", request.page_size),
            after=bounds.decode_page_token("page_token", request.page_token),
        )
        return pb.ListWorkspaceAccessResponse(
            access=[access(g) for g in rows], next_page_token=bounds.encode_page_token(after) if after else ""
        )


@register(pb.DESCRIPTOR.services_by_name["AccessService"].full_name)
def _register(app: Any, server: grpc.aio.Server, management: Management) -> None:
    pb_grpc.add_AccessServiceServicer_to_server(AccessServicer(management), server)
