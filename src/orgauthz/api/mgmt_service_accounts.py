"""``orgauthz.v1.ServiceAccountService``: bounds, actor, one call into services.service_accounts, back."""

from __future__ import annotations

from typing import Any

import grpc

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.mgmt_invitations import ts
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.services import service_accounts as sas
from orgauthz.services.context import Management
from orgauthz.v1 import service_accounts_pb2 as pb
from orgauthz.v1 import service_accounts_pb2_grpc as pb_grpc


def to_pb(v: sas.ServiceAccountView) -> pb.ServiceAccount:
    return pb.ServiceAccount(
        id=v.id,
        organization=v.org_id,
        name=v.name,
        org_role=v.org_role,
        created_at=ts(v.created_at),
        keys=[
            pb.ApiKeyInfo(
                id=k.id,
                masked=k.masked,
                created_at=ts(k.created_at),
                active=k.active,
                expires_at=ts(k.expires_at) if k.expires_at else None,
                revoked_at=ts(k.revoked_at) if k.revoked_at else None,
            )
            for k in v.keys
        ],
    )


class ServiceAccountServicer(pb_grpc.ServiceAccountServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, mgmt: Management) -> None:
        self.mgmt = mgmt

    @rpc
    async def CreateServiceAccount(
        self, request: pb.CreateServiceAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateServiceAccountResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_optional_id("id", request.id)
        name = bounds.check_name("name", request.name)
        role = bounds.check_id("org_role", request.org_role) if request.org_role else ""
        ttl = sas.check_key_ttl("key_expires_in_seconds", request.key_expires_in_seconds)
        actor = await resolve_actor(context, self.mgmt)
        shown, key, revision = await sas.create_service_account(
            self.mgmt, actor, org, sa_id=ident, name=name, role=role, key_ttl_s=ttl
        )
        return pb.CreateServiceAccountResponse(
            service_account=to_pb(shown),
            api_key=key.api_key,
            revision=revision,
            api_key_expires_at=ts(key.expires_at) if key.expires_at else None,
        )

    @rpc
    async def ListServiceAccounts(
        self, request: pb.ListServiceAccountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListServiceAccountsResponse:
        org = bounds.check_id("organization", request.organization)
        size = bounds.check_page_size("page_size", request.page_size)
        after = bounds.decode_page_token("page_token", request.page_token)
        actor = await resolve_actor(context, self.mgmt)
        found, last = await sas.list_service_accounts(self.mgmt, actor, org, page_size=size, after=after)
        return pb.ListServiceAccountsResponse(
            service_accounts=[to_pb(v) for v in found], next_page_token=bounds.encode_page_token(last) if last else ""
        )

    @rpc
    async def GetServiceAccount(
        self, request: pb.GetServiceAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetServiceAccountResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        actor = await resolve_actor(context, self.mgmt)
        return pb.GetServiceAccountResponse(
            service_account=to_pb(await sas.get_service_account(self.mgmt, actor, org, ident))
        )

    @rpc
    async def RotateServiceAccountKey(
        self, request: pb.RotateServiceAccountKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.RotateServiceAccountKeyResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        ttl = sas.check_key_ttl("key_expires_in_seconds", request.key_expires_in_seconds)
        grace = sas.check_grace("grace_period_seconds", request.grace_period_seconds)
        actor = await resolve_actor(context, self.mgmt)
        shown, key, revision = await sas.rotate_key(self.mgmt, actor, org, ident, key_ttl_s=ttl, grace_s=grace)
        return pb.RotateServiceAccountKeyResponse(
            service_account=to_pb(shown),
            api_key=key.api_key,
            revision=revision,
            api_key_expires_at=ts(key.expires_at) if key.expires_at else None,
        )

    @rpc
    async def UpdateServiceAccount(
        self, request: pb.UpdateServiceAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateServiceAccountResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        name = bounds.check_name("name", request.name, required=False)
        role = bounds.check_id("org_role", request.org_role) if request.org_role else ""
        actor = await resolve_actor(context, self.mgmt)
        shown, revision = await sas.update_service_account(self.mgmt, actor, org, ident, name=name, role=role)
        return pb.UpdateServiceAccountResponse(service_account=to_pb(shown), revision=revision)

    @rpc
    async def DeleteServiceAccount(
        self, request: pb.DeleteServiceAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteServiceAccountResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        actor = await resolve_actor(context, self.mgmt)
        return pb.DeleteServiceAccountResponse(revision=await sas.delete_service_account(self.mgmt, actor, org, ident))


@register("orgauthz.v1.ServiceAccountService")
def _register(app: Any, server: grpc.aio.Server, mgmt: Management) -> None:
    pb_grpc.add_ServiceAccountServiceServicer_to_server(ServiceAccountServicer(mgmt), server)
