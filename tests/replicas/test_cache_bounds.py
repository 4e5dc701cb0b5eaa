"""What the decision caches keep is bounded (SPEC §3: "Everything kept in Redis is bounded").

- An organization revision's Redis hash gets its TTL once: later writes never extend it.
- A hash never holds more fields than its bound, however many replicas write it.
- One replica never has more fields in Redis than its total bound.
- Subjects an organization does not know are not written to Redis, cost no Redis round
  trip, and are not kept in process memory.

Servers run in process on SQLite and PostgreSQL with a real redis-server; nothing here
depends on time passing (a lower TTL set by hand stands in for it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import redis as sync_redis

from orgauthz.api.server import App
from orgauthz.cache.memory import MemoryCache
from orgauthz.cache.redis import RedisDecisionCache, RedisLink
from orgauthz.domain.policy import PolicySet
from orgauthz.engine.authorizer import DecisionKey
from orgauthz.store.db import open_store
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from tests.conftest import settings_for
from tests.support.orgs import seed
from tests.support.services import RedisServer

MEMBERS = 20
WORKSPACES = 3
HASHES = "orgauthz:d:*"


def organization(org: str) -> dict[str, Any]:
    return {
        "id": org,
        "handle": org,
        "name": org.title(),
        "limits": {"members": MEMBERS + 10, "workspaces": WORKSPACES + 10},
        "members": [{"user": f"{org}-u{i}", "role": "Admin" if i == 0 else "Member"} for i in range(MEMBERS)],
        "workspaces": [
            {"id": f"{org}-w{w}", "handle": f"w{w}", "access": [{"subject": f"user:{org}-u1", "role": "Viewer"}]}
            for w in range(WORKSPACES)
        ],
    }


def member_questions(policy: PolicySet, org: str) -> list[pb.CheckRequest]:
    """Every distinct question about the organization's members: 20 x 3 x 31 = 1,860."""
    return [
        pb.CheckRequest(subject=f"user:{org}-u{i}", workspace=f"{org}-w{w}", scope=scope)
        for scope in sorted(policy.workspace_scopes)
        for w in range(WORKSPACES)
        for i in range(MEMBERS)
    ]


def stranger_questions(org: str, n: int, start: int = 0) -> list[pb.CheckRequest]:
    """Questions about subjects nobody created, a new one each time."""
    return [
        pb.CheckRequest(subject=f"user:nobody{i}", workspace=f"{org}-w{i % WORKSPACES}", scope="see_flows")
        for i in range(start, start + n)
    ]


@contextlib.asynccontextmanager
async def serving(
    store_url: str, policy: PolicySet, orgs: list[str], **settings: Any
) -> AsyncIterator[tuple[App, pb_grpc.AuthorizationServiceStub]]:
    db = open_store(store_url)
    seed(db, policy, {"organizations": [organization(o) for o in orgs]})
    db.dispose()
    # A loaded test machine can stall the loop past the default 0.25 s: a Redis timeout is
    # not what these tests are about (tests/replicas/test_tiers.py covers it).
    app = App(settings_for(store_url, redis_timeout_s=5.0, **settings))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app, pb_grpc.AuthorizationServiceStub(channel)
    finally:
        await app.stop(0)


async def ask(app: App, stub: pb_grpc.AuthorizationServiceStub, questions: list[pb.CheckRequest]) -> list[bool]:
    """BatchCheck of up to 1,000 at a time; the decisions queued for Redis are sent before it returns."""
    allowed: list[bool] = []
    for i in range(0, len(questions), 1000):
        response = await stub.BatchCheck(pb.BatchCheckRequest(items=questions[i : i + 1000]))
        allowed += [r.allowed for r in response.results]
    assert app.replication is not None
    if app.replication.shared is not None:
        await app.replication.shared.flush()
    return allowed


def shared(app: App) -> RedisDecisionCache:
    assert app.replication is not None
    assert app.replication.shared is not None
    return app.replication.shared


def decision_hashes(client: sync_redis.Redis) -> dict[bytes, int]:
    return {key: int(client.hlen(key)) for key in client.scan_iter(match=HASHES)}


@pytest.fixture
def client(redis: RedisServer) -> sync_redis.Redis:
    return sync_redis.Redis.from_url(redis.url)


@pytest.mark.redis
async def test_s3_later_writes_never_extend_a_revisions_ttl(store_url, redis, client, policy) -> None:
    questions = member_questions(policy, "acme")
    async with serving(store_url, policy, ["acme"], redis_url=redis.url, redis_cache_ttl_s=600) as (app, stub):
        await ask(app, stub, questions[:100])
        ((key, fields),) = decision_hashes(client).items()
        assert 0 < client.ttl(key) <= 600
        client.expire(key, 30)  # stands in for 570 s of the revision's life gone by
        await ask(app, stub, questions[100:1000])
        assert client.hlen(key) > fields  # written to, at the same revision
        assert 0 < client.ttl(key) <= 30  # and not kept alive by it


@pytest.mark.redis
async def test_s3_a_revisions_hash_never_exceeds_its_field_bound(store_url, redis, client, policy) -> None:
    questions = member_questions(policy, "acme")
    settings = {"redis_url": redis.url, "redis_cache_max_fields_per_revision": 50}
    async with serving(store_url, policy, ["acme"], **settings) as (app, stub):
        await ask(app, stub, questions[:1000])
        await ask(app, stub, questions[1000:])
        assert list(decision_hashes(client).values()) == [50]
        assert shared(app).capped >= len(questions) - 50


@pytest.mark.redis
async def test_s3_replicas_writing_one_hash_at_once_stay_within_its_bound(redis, client) -> None:
    links = [RedisLink(redis.url), RedisLink(redis.url)]
    caches = [RedisDecisionCache(link, digest="d", max_fields_per_revision=50) for link in links]
    try:
        for n, cache in enumerate(caches):
            for i in range(100):
                cache.put(DecisionKey("acme", 7, f"user:r{n}-{i}", "ws:acme-w0", "see_flows"), False)
        await asyncio.gather(*(cache.flush() for cache in caches))
        assert decision_hashes(client) == {b"orgauthz:d:d:acme:7": 50}
    finally:
        for cache, link in zip(caches, links, strict=True):
            await cache.close()
            await link.close()


@pytest.mark.redis
async def test_s3_one_replica_keeps_at_most_its_total_bound_in_redis(store_url, redis, client, policy) -> None:
    orgs = ["acme", "beta", "gamma"]
    settings = {"redis_url": redis.url, "redis_cache_max_fields_per_revision": 400, "redis_cache_max_fields": 1000}
    async with serving(store_url, policy, orgs, **settings) as (app, stub):
        for org in orgs:
            await ask(app, stub, member_questions(policy, org))
        for org in orgs:  # once more: nothing new fits
            await ask(app, stub, member_questions(policy, org))
        hashes = decision_hashes(client)
        assert len(hashes) == 3
        assert max(hashes.values()) <= 400
        assert 400 <= sum(hashes.values()) <= 1000


@pytest.mark.redis
async def test_s3_subjects_an_organization_does_not_know_are_not_written_to_redis(
    store_url, redis, client, policy
) -> None:
    known = member_questions(policy, "acme")[:200]
    async with serving(store_url, policy, ["acme"], redis_url=redis.url) as (app, stub):
        assert not any(await ask(app, stub, stranger_questions("acme", 3000)))
        await ask(app, stub, known)
        ((key, fields),) = decision_hashes(client).items()
        assert fields == len(known)  # allows and denials about members, and nothing else
        assert not [f for f in client.hkeys(key) if f.startswith(b"user:nobody")]


@pytest.mark.redis
async def test_s3_unknown_subjects_cost_no_redis_round_trip(store_url, redis, policy) -> None:
    async with serving(store_url, policy, ["acme"], redis_url=redis.url, redis_lookup="always") as (app, stub):
        await ask(app, stub, member_questions(policy, "acme")[:10])  # the organization is loaded
        cache = shared(app)
        asked = cache.hits + cache.misses + cache.failures
        assert not any(await ask(app, stub, stranger_questions("acme", 2000)))
        assert cache.hits + cache.misses + cache.failures == asked


async def test_s3_unknown_subjects_do_not_grow_the_in_process_cache(store_url, policy) -> None:
    known = member_questions(policy, "acme")
    async with serving(store_url, policy, ["acme"], cache_max_entries=1000) as (app, stub):
        cache = app.replication.memory
        assert isinstance(cache, MemoryCache)
        await ask(app, stub, known[:100])
        assert len(cache) == 100
        for n in range(5):  # 5,000 subjects nobody created, then the same ones again
            assert not any(await ask(app, stub, stranger_questions("acme", 1000, start=n * 1000)))
        assert not any(await ask(app, stub, stranger_questions("acme", 1000)))
        assert len(cache) == 100
        await ask(app, stub, known)  # more members' questions than it holds: still bounded
        assert len(cache) <= 1000
