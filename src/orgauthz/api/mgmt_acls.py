"""``orgauthz.v1.AclService``: bounds, actor, one call into services.acls, back (R26, R27)."""

from __future__ import annotations

from typing import Any

import grpc

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.mgmt_invitations import ts
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.errors import InvalidArgument
from orgauthz.services import acls
from orgauthz.services.context import Management
from orgauthz.v1 import acls_pb2 as pb
from orgauthz.v1 import acls_pb2_grpc as pb_grpc


def to_pb(v: acls.AclView | None) -> pb.Acl | None:
    if v is None:
        return None
    return pb.Acl(
        workspace=v.workspace,
        object=v.object,
        entries=[pb.AclEntry(subject=e.actor, level=e.level, grant=e.grant) for e in v.entries],
        revision=v.revision,
        updated_at=ts(v.updated_at),
    )


class AclServicer(pb_grpc.AclServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, mgmt: Management) -> None:
        self.mgmt = mgmt

    @rpc
    async def SetAcl(self, request: pb.SetAclRequest, context: grpc.aio.ServicerContext) -> pb.SetAclResponse:
        ws = bounds.check_id("workspace", request.workspace)
        bounds.check_object("object", request.object)
        entries = [(e.subject, e.level, e.grant) for e in request.entries]
        actor = await resolve_actor(context, self.mgmt)
        view, revision = await acls.set_acl(self.mgmt, actor, ws, request.object, entries, request.expected_revision)
        return pb.SetAclResponse(acl=to_pb(view), revision=revision)

    @rpc
    async def GetAcl(self, request: pb.GetAclRequest, context: grpc.aio.ServicerContext) -> pb.GetAclResponse:
        ws = bounds.check_id("workspace", request.workspace)
        bounds.check_object("object", request.object)
        actor = await resolve_actor(context, self.mgmt)
        found = await acls.get_acl(self.mgmt, actor, ws, request.object)
        return pb.GetAclResponse(acl=to_pb(found.acl), work_pool=found.work_pool, governed_by=to_pb(found.governed_by))

    @rpc
    async def ListAcls(self, request: pb.ListAclsRequest, context: grpc.aio.ServicerContext) -> pb.ListAclsResponse:
        ws = bounds.check_id("workspace", request.workspace)
        if request.kind and request.kind not in bounds.OBJECT_KINDS:
            raise InvalidArgument("kind", f"must be one of {', '.join(bounds.OBJECT_KINDS)} or empty")
        size = bounds.check_page_size("page_size", request.page_size)
        after = bounds.decode_page_token("page_token", request.page_token)
        actor = await resolve_actor(context, self.mgmt)
        found, last = await acls.list_acls(self.mgmt, actor, ws, kind=request.kind, page_size=size, after=after)
        return pb.ListAclsResponse(
            acls=[a for a in (to_pb(v) for v in found) if a is not None],
            next_page_token=bounds.encode_page_token(last) if last else "",
        )

    @rpc
    async def ClearAcl(self, request: pb.ClearAclRequest, context: grpc.aio.ServicerContext) -> pb.ClearAclResponse:
        ws = bounds.check_id("workspace", request.workspace)
        bounds.check_object("object", request.object)
        actor = await resolve_actor(context, self.mgmt)
        revision = await acls.clear_acl(self.mgmt, actor, ws, request.object, request.expected_revision)
        return pb.ClearAclResponse(revision=revision)

    @rpc
    async def SetDeploymentWorkPool(
        self, request: pb.SetDeploymentWorkPoolRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetDeploymentWorkPoolResponse:
        ws = bounds.check_id("workspace", request.workspace)
        deployment = bounds.check_id("deployment", request.deployment)
        pool = bounds.check_optional_id("work_pool", request.work_pool)
        actor = await resolve_actor(context, self.mgmt)
        revision = await acls.set_deployment_pool(self.mgmt, actor, ws, deployment, pool)
        return pb.SetDeploymentWorkPoolResponse(revision=revision)


@register("orgauthz.v1.AclService")
def _register(app: Any, server: Any, mgmt: Management) -> None:
    pb_grpc.add_AclServiceServicer_to_server(AclServicer(mgmt), server)
