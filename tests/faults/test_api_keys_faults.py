"""R14 with the database stopped: a warm Authenticate is answered from memory alone.

A replica on its own PostgreSQL cluster resolves a user key and a service account key once;
the cluster is then stopped. Both keys still authenticate (their entries are in memory and
need no round trip), while a key never seen before, which needs the database, is UNAVAILABLE
(retryable), never a guess. Once the database is back, everything answers as before.
"""

from __future__ import annotations

import grpc
import pytest

from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import authorization_pb2_grpc as apbg
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from orgauthz.v1 import user_api_keys_pb2 as upb
from orgauthz.v1 import user_api_keys_pb2_grpc as upbg
from tests.replicas.harness import wait_health

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
C = grpc.StatusCode


async def _code(stub: apbg.AuthorizationServiceStub, key: str) -> tuple[C, str]:
    try:
        r = await stub.Authenticate(apb.AuthenticateRequest(api_key=key), timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), ""
    return C.OK, r.subject


async def test_r14_warm_authenticate_needs_no_database(own_pg, replicas) -> None:
    cluster, url, _ = own_pg
    a = replicas("a", url)
    async with grpc.aio.insecure_channel(a.address) as ch:
        authz = apbg.AuthorizationServiceStub(ch)
        user_key = (
            await upbg.UserApiKeyServiceStub(ch).CreateUserApiKey(
                upb.CreateUserApiKeyRequest(user_id="u1", name="laptop"), metadata=(("x-orgauthz-actor", "user:u1"),)
            )
        ).api_key
        sa_key = (
            await spbg.ServiceAccountServiceStub(ch).CreateServiceAccount(
                spb.CreateServiceAccountRequest(organization="acme", id="robot", name="robot"),
                metadata=(("x-orgauthz-actor", "user:admin"),),
            )
        ).api_key
        expected = {user_key: "user:u1", sa_key: "service_account:robot"}
        for key, subject in expected.items():
            assert await _code(authz, key) == (C.OK, subject)  # read once: now in memory
        other = (
            await upbg.UserApiKeyServiceStub(ch).CreateUserApiKey(
                upb.CreateUserApiKeyRequest(user_id="u2", name="never used"),
                metadata=(("x-orgauthz-actor", "user:u2"),),
            )
        ).api_key
        cluster.stop()
        try:
            await wait_health(a, "orgauthz.v1.Store", "NOT_SERVING")
            for _ in range(20):
                for key, subject in expected.items():
                    assert await _code(authz, key) == (C.OK, subject)
            assert (await _code(authz, other))[0] == C.UNAVAILABLE  # cold: needs the database
        finally:
            cluster.start()
        await wait_health(a, "orgauthz.v1.Store", "SERVING")
        assert await _code(authz, other) == (C.OK, "user:u2")
    hits = a.metric("orgauthz_cache_total", tier="api_keys", result="hit")
    print(f"[api keys, database stopped] 40 warm answers from memory; key cache hits {hits:.0f}")
    assert hits >= 40
