"""The Redis tier and the feed's reload, in process against real redis-server and PostgreSQL.

- Redis entries are keyed by the organization's revision: a change makes them unreachable.
- Redis failure is a counted miss: the engine answers, never an allow from nowhere.
- A replica far behind, or facing a gap in the revisions, re-reads the index.
- A local write is applied at once even while a poll runs, and that poll skips it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from orgauthz.cache.redis import RedisDecisionCache, RedisLink, policy_digest
from orgauthz.engine.authorizer import Ask, Authorizer, Decision, EngineAuthorizer
from orgauthz.engine.engine import Engine, Target
from orgauthz.engine.feed import ChangeFeed
from orgauthz.engine.redis_authorizer import RedisCachingAuthorizer
from orgauthz.store import base as store
from orgauthz.store import snapshots
from orgauthz.store.db import open_store
from orgauthz.store.models import Change
from tests.replicas.harness import ORG, Writer
from tests.support.store import commit_rows

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


class Counting:
    """The engine's authorizer, counting the questions it decides."""

    def __init__(self, engine: Engine) -> None:
        self.inner = EngineAuthorizer(engine)
        self.calls = 0

    def try_cached(self, ask: Ask) -> Decision | None:
        decision = self.inner.try_cached(ask)
        self.calls += decision is not None
        return decision

    async def decide(self, asks: Sequence[Ask]) -> list[Decision]:
        self.calls += len(asks)
        return await self.inner.decide(asks)


async def ask(tier: Authorizer, subject: str, target: Target | None, scope: str) -> Decision:
    """One question through the tier, as the layer above it asks (its fast path first)."""
    question = Ask(subject, target, scope)
    found = tier.try_cached(question)
    if found is None:
        (found,) = await tier.decide([question])
    return found


@pytest.fixture
async def engine(replica_db, policy):
    url, _ = replica_db
    db = open_store(url)
    eng = Engine(policy, db)
    await eng.start()
    yield eng
    db.dispose()


async def test_s3_redis_entries_are_keyed_by_the_organizations_revision(engine, redis, policy, replica_db) -> None:
    link = RedisLink(redis.url)
    shared = RedisDecisionCache(link, digest=policy_digest(policy))
    counting = Counting(engine)
    tier = RedisCachingAuthorizer(counting, engine, shared, lookup="always")
    feed = ChangeFeed(engine)
    writer = Writer(replica_db[0], "", None)
    target = engine.resolve(workspace="w0")
    try:
        await writer.set_role("u1", "w0", None, "Viewer")
        await feed.poll()
        assert (await ask(tier, "user:u1", target, "see_flows")).allowed
        assert not (await ask(tier, "user:u2", target, "see_flows")).allowed  # denials too
        await shared.flush()
        calls = counting.calls
        assert (await ask(tier, "user:u1", target, "see_flows")).allowed
        assert not (await ask(tier, "user:u2", target, "see_flows")).allowed
        assert counting.calls == calls
        assert shared.hits == 2
        await writer.set_role("u1", "w0", "Viewer", None)  # revoke: a new organization revision
        await feed.poll()
        assert not (await ask(tier, "user:u1", target, "see_flows")).allowed
        assert counting.calls == calls + 1
    finally:
        writer.close()
        await shared.close()
        await link.close()


async def test_s3_redis_down_is_a_counted_miss_never_an_allow(engine, redis, policy) -> None:
    link = RedisLink(redis.url, timeout_s=0.2, probe_interval_s=0.1)
    shared = RedisDecisionCache(link, digest=policy_digest(policy))
    tier = RedisCachingAuthorizer(EngineAuthorizer(engine), engine, shared, lookup="always")
    target = engine.resolve(workspace="o0")
    try:
        redis.stop()
        assert (await ask(tier, "user:zed", target, "see_flows")).allowed
        assert not (await ask(tier, "user:zed", target, "manage_flows")).allowed
        assert not link.healthy
        assert link.errors >= 1
        assert shared.failures == 2
        redis.start()
        for _ in range(100):
            if link.healthy:
                break
            await asyncio.sleep(0.05)
        assert link.healthy  # reconnected by the probe
        assert not (await ask(tier, "user:zed", target, "manage_flows")).allowed
        await shared.flush()
        assert shared.writes >= 1
    finally:
        await shared.close()
        await link.close()


async def test_s3_far_behind_replica_rereads_the_index(engine, replica_db) -> None:
    url, _ = replica_db
    feed = ChangeFeed(engine, batch=4, reload_after=5)
    writer = Writer(url, "", None)
    target = engine.resolve(workspace="w1")
    try:
        assert await engine.ensure_loaded(ORG)
        role = None
        for i in range(12):
            nxt = "Developer" if i % 2 == 0 else None
            await writer.set_role("u3", "w1", role, nxt)
            role = nxt
        await writer.set_role("u3", "w1", role, "Viewer")
        await feed.poll()
        assert engine.reloads == 1
        assert not engine.loaded(ORG)
        assert await engine.ensure_loaded(ORG)
        assert engine.decide("user:u3", target, "see_flows")
        assert not engine.decide("user:u3", target, "manage_flows")
    finally:
        writer.close()


async def test_s3_gap_in_revisions_rereads_the_index(engine, replica_db) -> None:
    url, _ = replica_db
    feed = ChangeFeed(engine)
    writer = Writer(url, "", None)
    target = engine.resolve(workspace="w2")
    try:
        assert await engine.ensure_loaded(ORG)
        first = await writer.set_role("u4", "w2", None, "Developer")
        await writer.set_role("u4", "w2", "Developer", "Viewer")
        # changes pruned under the replica
        await commit_rows(writer.db, ORG, "test.prune", store.delete(Change, revision=first))
        await feed.poll()
        assert engine.reloads == 1
        assert await engine.ensure_loaded(ORG)
        assert engine.decide("user:u4", target, "see_flows")
        assert not engine.decide("user:u4", target, "manage_flows")
    finally:
        writer.close()


async def test_s3_a_redis_hit_for_an_unloaded_organization_loads_it_in_the_background(
    engine, redis, policy, replica_db
) -> None:
    """A fresh replica answered from Redis loads the organization meanwhile, so later new
    questions stop costing a Redis round trip each."""
    link = RedisLink(redis.url)
    shared = RedisDecisionCache(link, digest=policy_digest(policy))
    writer = Writer(replica_db[0], "", None)
    try:
        await writer.set_role("u1", "w0", None, "Viewer")
        await ChangeFeed(engine).poll()
        target = engine.resolve(workspace="w0")
        # Another replica decided and shared the answer.
        warm = RedisCachingAuthorizer(EngineAuthorizer(engine), engine, shared)
        assert (await ask(warm, "user:u1", target, "see_flows")).allowed
        await shared.flush()
        # A fresh replica on the same store, with nothing loaded.
        fresh_db = open_store(replica_db[0])
        fresh = Engine(policy, fresh_db)
        await fresh.start()
        try:
            counting = Counting(fresh)
            tier = RedisCachingAuthorizer(counting, fresh, shared)
            assert not fresh.loaded(ORG)
            assert (await ask(tier, "user:u1", fresh.resolve(workspace="w0"), "see_flows")).allowed
            assert counting.calls == 0  # answered from Redis
            for _ in range(200):
                if fresh.loaded(ORG):
                    break
                await asyncio.sleep(0.02)
            assert fresh.loaded(ORG)
        finally:
            fresh_db.dispose()
    finally:
        writer.close()
        await shared.close()
        await link.close()


async def test_s3_a_local_write_is_applied_at_once_while_a_poll_runs(engine, replica_db) -> None:
    """A write's own revision does not wait for a poll in progress (SPEC §3: visible at once
    on the replica that wrote it)."""
    url, _ = replica_db
    feed = ChangeFeed(engine)
    writer = Writer(url, "", None)
    target = engine.resolve(workspace="w1")
    try:
        assert await engine.ensure_loaded(ORG)
        await feed.poll()
        rev = await writer.set_role("u3", "w1", None, "Developer")
        (entry,) = snapshots.changes_since(engine.db, rev - 1)
        async with feed._poll_lock:  # a poll is running
            await asyncio.wait_for(feed.applied_locally(rev, entry.change), 2)
            assert engine.applied == rev
            assert engine.decide("user:u3", target, "manage_flows")
    finally:
        writer.close()


async def test_s3_a_poll_skips_revisions_applied_while_it_read(engine, replica_db, monkeypatch) -> None:
    """The poll read revisions r1 and r2; the local write r1 was applied meanwhile: r2 is
    applied after it, and no gap is seen (no re-read of the index)."""
    url, _ = replica_db
    feed = ChangeFeed(engine)
    writer = Writer(url, "", None)
    target = engine.resolve(workspace="w1")
    loop = asyncio.get_running_loop()
    try:
        assert await engine.ensure_loaded(ORG)
        await feed.poll()
        r1 = await writer.set_role("u3", "w1", None, "Developer")
        r2 = await writer.set_role("u3", "w1", "Developer", "Viewer")
        (first, _) = snapshots.changes_since(engine.db, r1 - 1)
        real = snapshots.changes_since

        def read_while_r1_lands(*args, **kwargs):  # runs in the poll's worker thread
            found = real(*args, **kwargs)
            asyncio.run_coroutine_threadsafe(feed.applied_locally(r1, first.change), loop).result(timeout=2)
            return found

        monkeypatch.setattr(snapshots, "changes_since", read_while_r1_lands)
        assert await feed.poll() == 1
        assert (engine.applied, engine.reloads) == (r2, 0)
        assert engine.decide("user:u3", target, "see_flows")
        assert not engine.decide("user:u3", target, "manage_flows")
    finally:
        writer.close()


async def test_s3_a_poll_with_nothing_new_reads_only_the_head_on_the_loop(engine, replica_db, monkeypatch) -> None:
    """Every poll read the changes in a worker thread, whose Python contends with the event
    loop for the interpreter; a poll that finds nothing new now reads only the head, on the
    loop's connection. One that finds a change still applies it."""
    url, _ = replica_db
    feed = ChangeFeed(engine)
    writer = Writer(url, "", None)
    target = engine.resolve(workspace="w1")
    reads: list[int] = []
    real = snapshots.changes_since

    def counted(*args, **kwargs):
        reads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(snapshots, "changes_since", counted)
    try:
        assert await engine.ensure_loaded(ORG)
        await feed.poll()
        reads.clear()
        for _ in range(3):
            assert await feed.poll() == 0
        assert reads == []
        rev = await writer.set_role("u3", "w1", None, "Developer")
        assert await feed.poll() == 1
        assert reads
        assert (engine.applied, feed.known_head) == (rev, rev)
        assert engine.decide("user:u3", target, "manage_flows")
    finally:
        writer.close()
        await engine.db.aclose()
