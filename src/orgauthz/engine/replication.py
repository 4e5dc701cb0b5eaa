"""What a replica needs to share with the others: the Redis tier and change notifications.

:meth:`Replication.build` composes the decision path
``CachingAuthorizer (memory) → RedisCachingAuthorizer → EngineAuthorizer`` when a Redis
URL is configured, and plain ``memory → engine`` otherwise; it wires the change notifier to
the feed (decisions wait for the head revision found at start in ``Decisions.at_least``). It also answers what
is degraded, for health and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from orgauthz.cache.memory import MemoryCache
from orgauthz.cache.redis import RedisDecisionCache, RedisLink, policy_digest
from orgauthz.config import Settings
from orgauthz.engine.authorizer import Authorizer, CachingAuthorizer, EngineAuthorizer
from orgauthz.engine.engine import Engine
from orgauthz.engine.feed import ChangeFeed
from orgauthz.engine.pubsub import ChangeNotifier
from orgauthz.engine.redis_authorizer import RedisCachingAuthorizer


@dataclass
class Replication:
    feed: ChangeFeed
    memory: MemoryCache
    link: RedisLink | None = None
    shared: RedisDecisionCache | None = None
    redis_tier: RedisCachingAuthorizer | None = None
    notifier: ChangeNotifier | None = None

    @classmethod
    def build(
        cls, settings: Settings, engine: Engine, feed: ChangeFeed, memory: MemoryCache
    ) -> tuple[Replication, Authorizer]:
        """The replication parts and the composed decision path."""
        inner: Authorizer = EngineAuthorizer(engine)
        rep = cls(feed=feed, memory=memory)
        if settings.redis_url:
            rep.link = RedisLink(settings.redis_url, timeout_s=settings.redis_timeout_s)
            rep.shared = RedisDecisionCache(
                rep.link,
                digest=policy_digest(engine.policy),
                ttl_s=settings.redis_cache_ttl_s,
                max_fields_per_revision=settings.redis_cache_max_fields_per_revision,
                max_fields=settings.redis_cache_max_fields,
            )
            rep.redis_tier = inner = RedisCachingAuthorizer(
                inner, engine, rep.shared, lookup="always" if settings.redis_lookup == "always" else "unloaded"
            )
            rep.notifier = ChangeNotifier(rep.link, feed)
            feed.on_commit(rep.notifier.publish)
        return rep, CachingAuthorizer(inner, engine, memory)

    def start(self) -> None:
        if self.notifier is not None:
            self.notifier.start()

    async def stop(self) -> None:
        if self.notifier is not None:
            await self.notifier.stop()
        if self.shared is not None:
            await self.shared.close()
        if self.link is not None:
            await self.link.close()

    # -- what is degraded -------------------------------------------------------------

    @property
    def store_ok(self) -> bool:
        """False while the change feed cannot read the database."""
        return self.feed.healthy

    @property
    def cache_ok(self) -> bool | None:
        """None without Redis; False while Redis (cache or notifications) is unreachable."""
        if self.link is None or self.notifier is None:
            return None
        return self.link.healthy and self.notifier.subscribed

    def cache_counts(self) -> dict[tuple[str, str], float]:
        """Lookups by ``(tier, result)``: memory hit/miss; redis hit/miss/error/skipped."""
        counts: dict[tuple[str, str], float] = {
            ("memory", "hit"): self.memory.hits,
            ("memory", "miss"): self.memory.misses,
        }
        if self.shared is not None and self.redis_tier is not None:
            counts.update(
                {
                    ("redis", "hit"): self.shared.hits,
                    ("redis", "miss"): self.shared.misses,
                    ("redis", "error"): self.shared.failures,
                    ("redis", "skipped"): self.redis_tier.skipped,
                }
            )
        return counts

    def error_counts(self) -> dict[str, int]:
        """Failed calls by dependency since start."""
        return {"database": self.feed.errors, "redis": self.link.errors if self.link else 0}
