"""SPEC §3: two replicas on PostgreSQL and Redis never serve a stale allow.

A stream of grants, role changes and revokes runs on replica A while replica B is
checked continuously. Every answer is compared with the acknowledged writes at the
revision it reports; Checks carrying a write's ``min_revision`` must reflect it.
"""

from __future__ import annotations

import grpc
import pytest

from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from tests.replicas.harness import Oracle, Stream, Writer

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


async def test_s3_no_stale_allow_across_replicas_and_every_revoke_propagates(replica_db, redis, replicas) -> None:
    url, base = replica_db
    a = replicas("a", url, redis.url)
    b = replicas("b", url, redis.url)
    async with grpc.aio.insecure_channel(a.address) as ch:
        writer = Writer(url, redis.url, ch)
        stream = Stream(writer, Oracle(base), a, b, seed=4)
        try:
            background = await stream.run(150)
        finally:
            await stream.close()
            writer.close()
    stream.verify("two replicas")
    print(
        f"[two replicas] {background} background checks on b; b cache: "
        f"memory hits {b.metric('orgauthz_cache_total', tier='memory', result='hit'):.0f}, "
        f"redis hits {b.metric('orgauthz_cache_total', tier='redis', result='hit'):.0f}, "
        f"redis skipped {b.metric('orgauthz_cache_total', tier='redis', result='skipped'):.0f}"
    )
    assert len(stream.propagation_ms) == 150
    stream.assert_store_matches()
    assert b.metric("orgauthz_feed_lag_revisions") == 0
    assert b.health("orgauthz.v1.Cache") == "SERVING"
    assert b.health("orgauthz.v1.Store") == "SERVING"


async def test_s3_read_rpcs_honour_min_revision_and_fail_retryably_when_ahead(replica_db, redis, replicas) -> None:
    url, base = replica_db
    b = replicas("b", url, redis.url, orgauthz_min_revision_wait_s=0.3)
    ahead = base + 1000
    async with grpc.aio.insecure_channel(b.address) as ch:
        stub = pb_grpc.AuthorizationServiceStub(ch)
        calls = {
            "Check": stub.Check(
                pb.CheckRequest(subject="user:u1", workspace="w0", scope="see_flows", min_revision=ahead)
            ),
            "BatchCheck": stub.BatchCheck(
                pb.BatchCheckRequest(
                    items=[pb.CheckRequest(subject="user:u1", workspace="w0", scope="see_flows")], min_revision=ahead
                )
            ),
            "ListScopes": stub.ListScopes(pb.ListScopesRequest(subject="user:u1", workspace="w0", min_revision=ahead)),
            "ListAccessibleWorkspaces": stub.ListAccessibleWorkspaces(
                pb.ListAccessibleWorkspacesRequest(subject="user:u1", min_revision=ahead)
            ),
        }
        for name, call in calls.items():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, name
            details = err.value.details() or ""
            assert "retry" in details, name
            assert str(ahead) in details, name
        # At or below the replica's revision, each answers and says which revision it reflects.
        r = await stub.Check(pb.CheckRequest(subject="user:zed", workspace="o0", scope="see_flows", min_revision=base))
        assert r.allowed
        assert r.revision >= base
        batch = await stub.BatchCheck(
            pb.BatchCheckRequest(
                items=[pb.CheckRequest(subject="user:zed", workspace="o0", scope="see_flows")], min_revision=base
            )
        )
        assert batch.results[0].allowed
        assert batch.results[0].revision >= base
        scopes = await stub.ListScopes(pb.ListScopesRequest(subject="user:zed", workspace="o0", min_revision=base))
        assert "see_flows" in scopes.scopes
        assert scopes.revision >= base
        listed = await stub.ListAccessibleWorkspaces(
            pb.ListAccessibleWorkspacesRequest(subject="user:zed", min_revision=base)
        )
        assert [w.workspace for w in listed.workspaces] == ["o0"]
        assert listed.revision >= base
