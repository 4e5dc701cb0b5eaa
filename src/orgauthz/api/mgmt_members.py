"""``orgauthz.v1.MemberService``: thin translation around :mod:`orgauthz.services.members`."""

from __future__ import annotations

from typing import Any

import grpc

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.mgmt_organizations import timestamp
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.services import members as svc
from orgauthz.services.context import Management
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import management_pb2_grpc as pb_grpc


def member(m: svc.MemberView) -> pb.Member:
    return pb.Member(user_id=m.user_id, email=m.email, role=m.role, create_time=timestamp(m.created_at))


class MemberServicer(pb_grpc.MemberServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, management: Management) -> None:
        self.m = management

    @rpc
    async def ListMembers(
        self, request: pb.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMembersResponse:
        actor = await resolve_actor(context, self.m)
        rows, after = await svc.list_members(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            page_size=bounds.check_page_size("page_size", request.page_size),
            after=bounds.decode_page_token("page_token", request.page_token),
        )
        return pb.ListMembersResponse(
            members=[member(m) for m in rows], next_page_token=bounds.encode_page_token(after) if after else ""
        )

    @rpc
    async def ChangeMemberRole(
        self, request: pb.ChangeMemberRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChangeMemberRoleResponse:
        actor = await resolve_actor(context, self.m)
        m, rev = await svc.change_role(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            bounds.check_id("user_id", request.user_id),
            bounds.check_id("role", request.role),
        )
        return pb.ChangeMemberRoleResponse(member=member(m), revision=rev)

    @rpc
    async def RemoveMember(
        self, request: pb.RemoveMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveMemberResponse:
        actor = await resolve_actor(context, self.m)
        rev = await svc.remove_member(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            bounds.check_id("user_id", request.user_id),
        )
        return pb.RemoveMemberResponse(revision=rev)

    @rpc
    async def LeaveOrganization(
        self, request: pb.LeaveOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> pb.LeaveOrganizationResponse:
        actor = await resolve_actor(context, self.m)
        rev = await svc.leave_organization(self.m, actor, bounds.check_id("organization", request.organization))
        return pb.LeaveOrganizationResponse(revision=rev)


@register(pb.DESCRIPTOR.services_by_name["MemberService"].full_name)
def _register(app: Any, server: grpc.aio.Server, management: Management) -> None:
    pb_grpc.add_MemberServiceServicer_to_server(MemberServicer(management), server)
