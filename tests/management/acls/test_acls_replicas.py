"""R26, R27, SPEC §3 on two replicas sharing PostgreSQL and Redis: narrowing an ACL, clearing
a grant entry, or moving a deployment under a work pool's ACL on one replica is never
answered allow by the other from a state that reflects the write, whatever either of them
(or Redis) cached before (with ``min_revision``: at once; without it: once its feed applied it)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from orgauthz.v1 import acls_pb2 as xpb
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import management_pb2 as pb
from tests.conftest import settings_for
from tests.management.support import As, add_member, create_org, two_servers

pytestmark = pytest.mark.postgres


async def _check(channel: grpc.aio.Channel, subject: str, obj: str, min_revision: int = 0) -> apb.CheckResponse:
    return await As.of(channel).authz.Check(
        apb.CheckRequest(subject=subject, workspace="w", scope="run_deployments", object=obj, min_revision=min_revision)
    )


async def _batch(channel: grpc.aio.Channel, subject: str, objs: list[str], min_revision: int) -> list[bool]:
    items = [apb.CheckRequest(subject=subject, workspace="w", scope="run_deployments", object=o) for o in objs]
    r = await As.of(channel).authz.BatchCheck(apb.BatchCheckRequest(items=items, min_revision=min_revision))
    return [x.allowed for x in r.results]


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_narrowing_an_acl_on_one_replica_is_never_an_allow_on_the_other(store_url: str, redis) -> None:
    async with two_servers(settings_for(store_url, redis_url=redis.url)) as (a, _b, ch_a, ch_b):
        await create_org(ch_a)
        for user in ("bob", "vic"):
            await add_member(a, "acme", user)
        alice = As.of(ch_a, "user:alice")
        await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
        await alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:bob", role="Runner")
        )
        await alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace="w", subject="user:vic", role="Viewer")
        )
        s = await alice.acls.SetAcl(
            xpb.SetAclRequest(
                workspace="w",
                object="deployment:d1",
                entries=[
                    xpb.AclEntry(subject="user:bob", level="run"),
                    xpb.AclEntry(subject="user:vic", level="run", grant=True),
                ],
            )
        )
        objs = ["deployment:d1", "deployment:d2"]
        for channel in (ch_a, ch_b):  # both warm: allowed, cached in memory and in Redis
            for _ in range(3):
                assert (await _check(channel, "user:bob", "deployment:d1", s.acl.revision)).allowed
                assert (await _check(channel, "user:vic", "deployment:d1", s.acl.revision)).allowed
                assert await _batch(channel, "user:bob", objs, s.acl.revision) == [True, True]

        # Narrowed on a: bob off the list, vic's grant gone.
        n = await alice.acls.SetAcl(
            xpb.SetAclRequest(workspace="w", object="deployment:d1", entries=[], expected_revision=s.acl.revision)
        )
        assert not (await _check(ch_a, "user:bob", "deployment:d1")).allowed  # the writer: at once
        assert not (await _check(ch_b, "user:bob", "deployment:d1", n.revision)).allowed  # with min_revision
        assert not (await _check(ch_b, "user:vic", "deployment:d1", n.revision)).allowed
        assert await _batch(ch_b, "user:bob", objs, n.revision) == [False, True]

        # A work pool's ACL takes over a deployment: without min_revision, never an allow at or
        # after the write's revision.
        await alice.acls.ClearAcl(xpb.ClearAclRequest(workspace="w", object="deployment:d1"))
        assert (await _check(ch_b, "user:bob", "deployment:d2", 0)).allowed
        await alice.acls.SetDeploymentWorkPool(
            xpb.SetDeploymentWorkPoolRequest(workspace="w", deployment="d2", work_pool="p")
        )
        p = await alice.acls.SetAcl(xpb.SetAclRequest(workspace="w", object="work_pool:p", entries=[]))
        for _ in range(200):
            r = await _check(ch_b, "user:bob", "deployment:d2")
            assert not (r.allowed and r.revision >= p.revision), r
            if r.revision >= p.revision:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("replica b never applied the work pool's ACL")
        assert not (await _check(ch_b, "user:bob", "deployment:d2", p.revision)).allowed
        assert (await _check(ch_b, "user:bob", "deployment:d1", p.revision)).allowed  # cleared: the workspace decides
