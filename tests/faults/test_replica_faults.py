"""SPEC §3 degraded modes, with replicas as processes: every fault ends with zero wrong
decisions and no acknowledged write lost.

- Redis stopped and restarted mid-stream: decisions from memory, changes by polling.
- Pub/sub messages dropped (writes nobody announces; a replica without Redis at all).
- PostgreSQL stopped and restarted: Checks answer from memory, writes fail UNAVAILABLE
  with nothing written, replicas catch up.
- A replica killed with SIGKILL and restarted.
"""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest

from orgauthz.errors import Unavailable
from tests.replicas.harness import USERS, WORKSPACES, Oracle, Stream, Writer, wait_health

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


async def test_s3_redis_stopped_and_restarted_mid_stream(replica_db, redis, replicas) -> None:
    url, base = replica_db
    a = replicas("a", url, redis.url)
    b = replicas("b", url, redis.url)

    async def fault(i: int) -> None:
        if i == 15:
            redis.stop()
            await wait_health(b, "orgauthz.v1.Cache", "NOT_SERVING")
            assert b.health("orgauthz.v1.AuthorizationService") == "SERVING"
        if i == 35:
            redis.start()
            await wait_health(b, "orgauthz.v1.Cache", "SERVING")
            await wait_health(a, "orgauthz.v1.Cache", "SERVING")

    async with grpc.aio.insecure_channel(a.address) as ch:
        writer = Writer(url, redis.url, ch)
        stream = Stream(writer, Oracle(base), a, b, seed=5)
        try:
            await stream.run(50, hook=fault)
        finally:
            await stream.close()
            writer.close()
    stream.verify("redis stopped and restarted")
    stream.assert_store_matches()
    errors = b.metric("orgauthz_dependency_errors_total", dependency="redis")
    print(f"[redis stopped and restarted] redis errors counted on b: {errors:.0f}")
    assert errors > 0


async def test_s3_lost_change_messages_only_delay(replica_db, redis, replicas) -> None:
    """Writes nobody announces, seen by a replica with Redis and one with no Redis at all."""
    url, base = replica_db
    a = replicas("a", url, redis.url)
    b = replicas("b", url, "")  # polling only
    writer = Writer(url, redis.url, None, publish=False)
    stream = Stream(writer, Oracle(base), a, b, seed=6)
    try:
        await stream.run(30)
    finally:
        await stream.close()
        writer.close()
    stream.verify("pub/sub messages dropped")
    stream.assert_store_matches()
    assert b.health("orgauthz.v1.Cache") == "NOT_FOUND"  # no Redis configured: no cache to report on


async def test_s3_postgres_stopped_and_restarted(own_pg, redis, replicas) -> None:
    cluster, url, base = own_pg
    a = replicas("a", url, redis.url)
    b = replicas("b", url, redis.url)
    refused = 0

    async def fault(i: int) -> None:
        nonlocal refused
        if i != 20:
            return
        cluster.stop()
        await wait_health(b, "orgauthz.v1.Store", "NOT_SERVING")
        assert b.health("orgauthz.v1.AuthorizationService") == "SERVING"
        rng = random.Random(7)
        for _ in range(10):
            user, ws = rng.choice(USERS), rng.choice(WORKSPACES)
            before = stream.oracle.role(user, ws)
            with pytest.raises(Unavailable):
                await writer.set_role(user, ws, before, "Developer" if before != "Developer" else None)
            refused += 1
            # Checks keep coming from memory, at the last acknowledged revision.
            for replica in (a, b):
                answer = await stream.check(replica, user, ws, "see_flows", stream.oracle.acknowledged)
                assert answer is not None
        cluster.start()
        await wait_health(b, "orgauthz.v1.Store", "SERVING")
        await wait_health(a, "orgauthz.v1.Store", "SERVING")

    async with grpc.aio.insecure_channel(a.address) as ch:
        writer = Writer(url, redis.url, ch)
        stream = Stream(writer, Oracle(base), a, b, seed=8)
        try:
            await stream.run(35, hook=fault)
            stream.verify("postgres stopped and restarted")
            stream.assert_store_matches()
        finally:
            await stream.close()
            writer.close()
    print(
        f"[postgres stopped and restarted] {refused} writes refused UNAVAILABLE while down, none written; "
        f"database errors counted on b: {b.metric('orgauthz_dependency_errors_total', dependency='database'):.0f}"
    )
    assert refused == 10
    assert b.metric("orgauthz_dependency_errors_total", dependency="database") > 0


async def test_s3_replica_killed_and_restarted(replica_db, redis, replicas) -> None:
    url, base = replica_db
    a = replicas("a", url, redis.url)
    b = replicas("b", url, redis.url)
    missed: list[tuple[str, str, int]] = []

    async def fault(i: int) -> None:
        if i != 15:
            return
        b.kill()
        rng = random.Random(9)
        for _ in range(10):  # acknowledged while b is down
            missed.append(await stream.write_one(rng))
        await asyncio.to_thread(b.start)
        for user, ws, rev in missed:
            await stream.fresh_checks(user, ws, rev)

    async with grpc.aio.insecure_channel(a.address) as ch:
        writer = Writer(url, redis.url, ch)
        stream = Stream(writer, Oracle(base), a, b, seed=10)
        try:
            await stream.run(30, hook=fault)
        finally:
            await stream.close()
            writer.close()
    stream.verify("replica killed and restarted")
    stream.assert_store_matches()
    assert b.starts == 2
    assert len(missed) == 10
    print(
        f"[replica killed and restarted] after restart b: redis hits "
        f"{b.metric('orgauthz_cache_total', tier='redis', result='hit'):.0f}, "
        f"org loads {b.metric('orgauthz_org_loads'):.0f}"
    )
