"""``orgauthz.v1.OrganizationService``: thin translation around :mod:`orgauthz.services.organizations`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from orgauthz.api.auth import optional_actor, resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.services import organizations as svc
from orgauthz.services.context import Management
from orgauthz.store.base import as_utc
from orgauthz.store.models import Organization
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import management_pb2_grpc as pb_grpc


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp of a stored (UTC) datetime; None stays unset."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(as_utc(value))
    return ts


def _limits(m: pb.Limits) -> svc.Limits:
    return svc.Limits(
        members=bounds.check_limit("limits.max_members", m.max_members),
        service_accounts=bounds.check_limit("limits.max_service_accounts", m.max_service_accounts),
        workspaces=bounds.check_limit("limits.max_workspaces", m.max_workspaces),
        teams=bounds.check_limit("limits.max_teams", m.max_teams),
    )


def organization(o: Organization) -> pb.Organization:
    return pb.Organization(
        id=o.id,
        handle=o.handle,
        name=o.name,
        revision=o.revision,
        create_time=timestamp(o.created_at),
        limits=pb.Limits(
            max_members=o.max_members,
            max_service_accounts=o.max_service_accounts,
            max_workspaces=o.max_workspaces,
            max_teams=o.max_teams,
        ),
    )


class OrganizationServicer(pb_grpc.OrganizationServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, management: Management) -> None:
        self.m = management

    @rpc
    async def CreateOrganization(
        self, request: pb.CreateOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateOrganizationResponse:
        actor = await optional_actor(context, self.m)
        org, rev = await svc.create_organization(
            self.m,
            actor,
            org_id=bounds.check_optional_id("id", request.id),
            handle=bounds.check_handle("handle", request.handle),
            name=bounds.check_name("name", request.name),
            admin_user_id=bounds.check_id("admin_user_id", request.admin_user_id),
            admin_email=bounds.check_email("admin_email", request.admin_email) if request.admin_email else "",
            limits=_limits(request.limits),
        )
        return pb.CreateOrganizationResponse(organization=organization(org), revision=rev)

    @rpc
    async def GetOrganization(
        self, request: pb.GetOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetOrganizationResponse:
        actor = await resolve_actor(context, self.m)
        org = await svc.get_organization(self.m, actor, bounds.check_id("organization", request.organization))
        return pb.GetOrganizationResponse(organization=organization(org))

    @rpc
    async def UpdateOrganizationLimits(
        self, request: pb.UpdateOrganizationLimitsRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateOrganizationLimitsResponse:
        actor = await resolve_actor(context, self.m)
        org_id = bounds.check_id("organization", request.organization)
        org, rev = await svc.update_limits(self.m, actor, org_id, _limits(request.limits))
        return pb.UpdateOrganizationLimitsResponse(organization=organization(org), revision=rev)

    @rpc
    async def UpdateOrganization(
        self, request: pb.UpdateOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateOrganizationResponse:
        actor = await resolve_actor(context, self.m)
        org, rev = await svc.update_organization(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            name=bounds.check_name("name", request.name),
        )
        return pb.UpdateOrganizationResponse(organization=organization(org), revision=rev)

    @rpc
    async def ListMyOrganizations(
        self, request: pb.ListMyOrganizationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMyOrganizationsResponse:
        actor = await resolve_actor(context, self.m)
        rows, after = await svc.list_my_organizations(
            self.m,
            actor,
            page_size=bounds.check_page_size("page_size", request.page_size),
            after=bounds.decode_page_token("page_token", request.page_token),
        )
        return pb.ListMyOrganizationsResponse(
            organizations=[pb.MyOrganization(organization=organization(o), role=role) for o, role in rows],
            next_page_token=bounds.encode_page_token(after) if after else "",
        )


@register(pb.DESCRIPTOR.services_by_name["OrganizationService"].full_name)
def _register(app: Any, server: grpc.aio.Server, management: Management) -> None:
    pb_grpc.add_OrganizationServiceServicer_to_server(OrganizationServicer(management), server)
