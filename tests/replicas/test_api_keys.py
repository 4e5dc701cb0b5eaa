"""R14, SPEC §3: API keys on two replicas sharing PostgreSQL and Redis.

Replica b serves Authenticate from memory once warm (its ``api_keys`` cache hits grow while
the answers stay right). A key deleted, rotated or whose account is deleted on replica a is:

- refused at once on b when b is given the write's revision as ``min_revision`` (as a Check);
- without it, never answered with the old identity by an answer that reflects the write's
  revision or later: b stops answering it as soon as its change feed applied the write
  (dropped by the applied change, not by a timeout; the poll interval here is 0.2 s);
- never accepted as the actor of a management call on b once the write returned (a
  management call reads the key from the database).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import authorization_pb2_grpc as apbg
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpbg
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from orgauthz.v1 import user_api_keys_pb2 as upb
from orgauthz.v1 import user_api_keys_pb2_grpc as upbg
from tests.replicas.harness import Replica

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]
C = grpc.StatusCode
ADMIN = (("x-orgauthz-actor", "user:admin"),)


def as_user(user: str) -> tuple[tuple[str, str], ...]:
    return (("x-orgauthz-actor", f"user:{user}"),)


async def answer(stub: apbg.AuthorizationServiceStub, key: str, min_revision: int = 0) -> tuple[C, str, int]:
    """(status, subject, revision the answer reflects; 0 when refused)."""
    try:
        r = await stub.Authenticate(apb.AuthenticateRequest(api_key=key, min_revision=min_revision), timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), "", 0
    return C.OK, r.subject, r.revision


async def warm(b: Replica, stub: apbg.AuthorizationServiceStub, key: str, subject: str) -> None:
    """Authenticates ``key`` on b until its answers come from memory."""
    hits = b.metric("orgauthz_cache_total", tier="api_keys", result="hit")
    for _ in range(20):
        assert (await answer(stub, key))[:2] == (C.OK, subject)
    assert b.metric("orgauthz_cache_total", tier="api_keys", result="hit") >= hits + 19


async def ended_on_b(stub: apbg.AuthorizationServiceStub, key: str, revision: int, what: str) -> int:
    """Asks b about ``key`` without ``min_revision`` until refused; every answer given with the
    old identity must reflect a revision older than the write that ended it. Returns how many
    such (correctly older) answers were given."""
    older = 0
    deadline = time.monotonic() + 10
    while True:
        code, _, at = await answer(stub, key)
        if code == C.UNAUTHENTICATED:
            break
        assert code == C.OK, what
        assert at < revision, f"{what}: the old identity answered at revision {at} >= {revision}"
        older += 1
        assert time.monotonic() < deadline, f"{what}: still answered 10 s after the write"
        await asyncio.sleep(0.005)
    # Once refused, never answered again.
    for _ in range(20):
        assert (await answer(stub, key))[0] == C.UNAUTHENTICATED, what
    return older


async def test_r14_keys_ended_on_one_replica_are_never_answered_from_memory_on_the_other(
    replica_db, redis, replicas
) -> None:
    url, _ = replica_db
    a = replicas("a", url, redis.url)
    b = replicas("b", url, redis.url)
    async with grpc.aio.insecure_channel(a.address) as ca, grpc.aio.insecure_channel(b.address) as cb:
        keys_a, authz_b = upbg.UserApiKeyServiceStub(ca), apbg.AuthorizationServiceStub(cb)
        sas_a = spbg.ServiceAccountServiceStub(ca)
        workspaces_b = mpbg.WorkspaceServiceStub(cb)
        listing = mpb.ListWorkspacesRequest(organization="acme")

        # A user key deleted on a: with min_revision b refuses it at once...
        first = await keys_a.CreateUserApiKey(
            upb.CreateUserApiKeyRequest(user_id="u1", name="one"), metadata=as_user("u1")
        )
        assert (await answer(authz_b, first.api_key, first.revision))[:2] == (C.OK, "user:u1")
        await warm(b, authz_b, first.api_key, "user:u1")
        gone = await keys_a.DeleteUserApiKey(
            upb.DeleteUserApiKeyRequest(user_id="u1", id=first.key.id), metadata=as_user("u1")
        )
        assert (await answer(authz_b, first.api_key, gone.revision))[0] == C.UNAUTHENTICATED

        # ...and without it, b stops once its feed applied the delete.
        second = await keys_a.CreateUserApiKey(
            upb.CreateUserApiKeyRequest(user_id="u2", name="two"), metadata=as_user("u2")
        )
        assert (await answer(authz_b, second.api_key, second.revision))[:2] == (C.OK, "user:u2")
        await warm(b, authz_b, second.api_key, "user:u2")
        gone = await keys_a.DeleteUserApiKey(
            upb.DeleteUserApiKeyRequest(user_id="u2", id=second.key.id), metadata=as_user("u2")
        )
        assert await code_of(workspaces_b.ListWorkspaces(listing, metadata=key_md(second.api_key))) == C.UNAUTHENTICATED
        older = await ended_on_b(authz_b, second.api_key, gone.revision, "deleted user key")

        # A service account key rotated on a (no grace), then the account deleted.
        created = await sas_a.CreateServiceAccount(
            spb.CreateServiceAccountRequest(organization="acme", id="robot", name="robot"), metadata=ADMIN
        )
        subject = "service_account:robot"
        assert (await answer(authz_b, created.api_key, created.revision))[:2] == (C.OK, subject)
        await warm(b, authz_b, created.api_key, subject)
        rot = await sas_a.RotateServiceAccountKey(
            spb.RotateServiceAccountKeyRequest(organization="acme", id="robot"), metadata=ADMIN
        )
        assert (
            await code_of(workspaces_b.ListWorkspaces(listing, metadata=key_md(created.api_key))) == C.UNAUTHENTICATED
        )
        older += await ended_on_b(authz_b, created.api_key, rot.revision, "rotated service account key")
        assert (await answer(authz_b, rot.api_key, rot.revision))[:2] == (C.OK, subject)
        await warm(b, authz_b, rot.api_key, subject)
        deleted = await sas_a.DeleteServiceAccount(
            spb.DeleteServiceAccountRequest(organization="acme", id="robot"), metadata=ADMIN
        )
        assert (await answer(authz_b, rot.api_key, deleted.revision))[0] == C.UNAUTHENTICATED

        # A key of a user who is a member acts as that user on b, from memory or not.
        third = await keys_a.CreateUserApiKey(
            upb.CreateUserApiKeyRequest(user_id="u3", name="three"), metadata=as_user("u3")
        )
        await answer(authz_b, third.api_key, third.revision)
        seen = await workspaces_b.ListWorkspaces(listing, metadata=key_md(third.api_key))
        assert seen is not None
    print(
        f"[api keys on two replicas] {older} answers on b before its feed applied the write, each at an older "
        f"revision; b's key cache: {b.metric('orgauthz_cache_total', tier='api_keys', result='hit'):.0f} hits, "
        f"{b.metric('orgauthz_cache_total', tier='api_keys', result='miss'):.0f} misses"
    )


def key_md(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("x-orgauthz-api-key", api_key),)


async def code_of(call: object) -> C:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return C.OK
