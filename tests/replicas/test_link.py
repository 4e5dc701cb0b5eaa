"""SPEC §3 and §5: a slow Redis command is not a Redis outage.

Every Redis call goes through ``RedisLink``. One command over ``ORGAUTHZ_REDIS_TIMEOUT_S``
with Redis healthy is counted and leaves the link up: the Cache health stays SERVING, the
subscriber stays subscribed and the next change's nudge reaches the other replicas. Failures
that go on without Redis answering in between take the link down, as an outage does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.cache.redis import RedisLink
from orgauthz.engine.replication import Replication
from tests.conftest import settings_for
from tests.replicas.harness import StallProxy, Writer, eventually, health_of
from tests.support.services import RedisServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CACHE = "orgauthz.v1.Cache"


@pytest.fixture
async def proxy(redis: RedisServer) -> AsyncIterator[StallProxy]:
    stalling = StallProxy(redis.port)
    await stalling.start()
    yield stalling
    stalling.blackhole = False
    await stalling.stop()


def _replication(app: App) -> Replication:
    assert app.replication is not None
    return app.replication


def _link(app: App) -> RedisLink:
    link = _replication(app).link
    assert link is not None
    return link


async def test_s3_one_slow_publish_leaves_the_link_up_and_the_next_nudge_is_delivered(
    replica_db: tuple[str, int], redis: RedisServer, proxy: StallProxy
) -> None:
    url, _ = replica_db
    # A reaches Redis through the proxy; B directly. A 30 s poll on both: a change reaches B
    # in this test only when B's subscriber hears A's nudge.
    a = App(settings_for(url, migrate=False, redis_url=proxy.url, poll_interval_s=30))
    b = App(settings_for(url, migrate=False, redis_url=redis.url, poll_interval_s=30))
    await a.start()
    await b.start()
    try:
        assert b.feed is not None
        feed_b, link_a, rep_a = b.feed, _link(a), _replication(a)
        assert rep_a.notifier is not None
        await eventually(lambda: bool(rep_a.cache_ok and _replication(b).cache_ok), "both subscribed")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as channel:
            writer = Writer(url, "", channel)
            try:
                first = await writer.set_role("u6", "w1", None, "Viewer")
                await eventually(lambda: feed_b.known_head >= first, f"revision {first} announced to b")

                # One publish stalls past the timeout; Redis is healthy.
                errors = link_a.errors
                proxy.stall_next()
                slow = await writer.set_role("u7", "w1", None, "Viewer")
                await eventually(lambda: link_a.errors > errors, f"the publish of revision {slow} timed out")
                assert proxy.stalled == 1
                assert link_a.healthy, "one timeout took the link down"
                assert rep_a.cache_ok
                assert await health_of(channel, CACHE) == "SERVING"

                # The next change's nudge is delivered to B's subscriber.
                nxt = await writer.set_role("u8", "w1", None, "Viewer")
                await eventually(lambda: feed_b.known_head >= nxt, f"revision {nxt} announced to b")
                assert link_a.healthy
                assert rep_a.notifier.subscribed

                # Failures that go on with no answer from Redis are an outage.
                proxy.blackhole = True
                await writer.set_role("u9", "w1", None, "Viewer")
                await eventually(lambda: not link_a.healthy, "the link down after consecutive failures")
                await eventually(lambda: not rep_a.cache_ok, "the cache reported degraded")
                await eventually(lambda: link_a.errors >= errors + 3, "the failures counted")
                proxy.blackhole = False
                await eventually(lambda: bool(rep_a.cache_ok), "the link back up")
            finally:
                writer.close()
    finally:
        await b.stop(0)
        await a.stop(0)


async def test_s3_a_run_of_failures_takes_the_link_down_and_an_answer_ends_it(proxy: StallProxy) -> None:
    link = RedisLink(proxy.url, timeout_s=0.1, probe_interval_s=0.05)
    try:
        assert await link.call("ping", link.client.ping())
        # One slow command: counted, the link stays up, and Redis answering a ping ends it.
        proxy.stall_next()
        assert await link.call("publish", link.client.publish("orgauthz:test", "1")) is None
        assert link.errors == 1
        assert link.healthy
        await eventually(lambda: link.failing_since == 0.0, "the run of failures ended by an answer")
        assert link.healthy
        # Redis unreachable (every command times out): down once the failures go on.
        proxy.blackhole = True
        assert await link.call("publish", link.client.publish("orgauthz:test", "2")) is None
        await eventually(lambda: not link.healthy, "the link down")
        assert link.errors >= 2
        proxy.blackhole = False
        await eventually(lambda: link.healthy, "the link back up")
        assert await link.call("ping", link.client.ping())
    finally:
        await link.close()
