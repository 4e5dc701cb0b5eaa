"""What the user-key tests share: a seeded server's stubs and short ways to call them."""

from __future__ import annotations

from typing import Any

import grpc

from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import user_api_keys_pb2 as pb


def as_user(user: str) -> tuple[tuple[str, str], ...]:
    return (("x-orgauthz-actor", f"user:{user}"),)


def with_key(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("x-orgauthz-api-key", api_key),)


async def create_key(
    keys: Any, user: str, name: str = "laptop", *, ttl: int = 0, metadata: Any = None
) -> pb.CreateUserApiKeyResponse:
    """``user`` creates one of their keys (asserted as the actor, unless ``metadata`` says otherwise)."""
    request = pb.CreateUserApiKeyRequest(user_id=user, name=name, expires_in_seconds=ttl)
    return await keys.CreateUserApiKey(request, metadata=as_user(user) if metadata is None else metadata)


async def status(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def authenticate(authz: Any, api_key: str, min_revision: int = 0) -> apb.AuthenticateResponse | grpc.StatusCode:
    """The answer, or the status code of a refusal (which never echoes the key)."""
    try:
        return await authz.Authenticate(apb.AuthenticateRequest(api_key=api_key, min_revision=min_revision))
    except grpc.aio.AioRpcError as exc:
        failure = exc
    assert not api_key or api_key not in (failure.details() or "")
    return failure.code()
