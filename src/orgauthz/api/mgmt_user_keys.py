"""``orgauthz.v1.UserApiKeyService``: bounds, actor, one call into services.user_keys, back."""

from __future__ import annotations

from typing import Any

import grpc

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.mgmt_invitations import ts
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.services import user_keys
from orgauthz.services.context import Management
from orgauthz.services.service_accounts import check_key_ttl
from orgauthz.v1 import user_api_keys_pb2 as pb
from orgauthz.v1 import user_api_keys_pb2_grpc as pb_grpc


def to_pb(v: user_keys.UserKeyView) -> pb.UserApiKey:
    return pb.UserApiKey(
        id=v.id,
        user_id=v.user_id,
        name=v.name,
        masked=v.masked,
        created_at=ts(v.created_at),
        expires_at=ts(v.expires_at) if v.expires_at else None,
        active=v.active,
    )


class UserApiKeyServicer(pb_grpc.UserApiKeyServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, mgmt: Management) -> None:
        self.mgmt = mgmt

    @rpc
    async def CreateUserApiKey(
        self, request: pb.CreateUserApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateUserApiKeyResponse:
        user = bounds.check_id("user_id", request.user_id)
        name = bounds.check_name("name", request.name)
        ttl = check_key_ttl("expires_in_seconds", request.expires_in_seconds)
        actor = await resolve_actor(context, self.mgmt)
        issued, revision = await user_keys.create_user_key(self.mgmt, actor, user, name=name, ttl_s=ttl)
        return pb.CreateUserApiKeyResponse(key=to_pb(issued.view), api_key=issued.api_key, revision=revision)

    @rpc
    async def ListUserApiKeys(
        self, request: pb.ListUserApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListUserApiKeysResponse:
        user = bounds.check_id("user_id", request.user_id)
        size = bounds.check_page_size("page_size", request.page_size)
        after = bounds.decode_page_token("page_token", request.page_token)
        actor = await resolve_actor(context, self.mgmt)
        found, last = await user_keys.list_user_keys(self.mgmt, actor, user, page_size=size, after=after)
        return pb.ListUserApiKeysResponse(
            keys=[to_pb(v) for v in found], next_page_token=bounds.encode_page_token(last) if last else ""
        )

    @rpc
    async def DeleteUserApiKey(
        self, request: pb.DeleteUserApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteUserApiKeyResponse:
        user = bounds.check_id("user_id", request.user_id)
        ident = bounds.check_id("id", request.id)
        actor = await resolve_actor(context, self.mgmt)
        return pb.DeleteUserApiKeyResponse(revision=await user_keys.delete_user_key(self.mgmt, actor, user, ident))


@register("orgauthz.v1.UserApiKeyService")
def _register(app: Any, server: grpc.aio.Server, mgmt: Management) -> None:
    pb_grpc.add_UserApiKeyServiceServicer_to_server(UserApiKeyServicer(mgmt), server)
