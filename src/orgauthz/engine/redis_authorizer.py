"""The Redis tier of the decision path: memory → Redis → engine, where Redis pays.

:class:`RedisCachingAuthorizer` wraps the engine's authorizer and is wrapped by the
in-process :class:`~orgauthz.engine.authorizer.CachingAuthorizer`. Measured here (see
docs/consistency.md), a Redis round trip costs more than the engine deciding for an
organization it holds in memory, so by default (``lookup="unloaded"``) Redis is asked
only for organizations this replica has not loaded (a fresh or restarted replica, an
evicted organization), where the alternative is reading the organization from the
database. ``lookup="always"`` asks Redis before the engine on every in-process miss.

Every decision the engine makes about a subject the organization knows is queued for
Redis (off the response path) so the other replicas can use it. A subject the loaded
organization does not know (nobody created it, or it left) is denied by the engine in one
set lookup: Redis is neither asked nor written, so a stream of questions about
nonexistent subjects cannot grow it.

Consistency: a Redis entry is keyed by the organization's revision, and its value is a
pure function of the organization's state at that revision and the policies (whose
digest is in the key). A hit is used only if this replica is still at the revision it
looked up after the round trip; otherwise the engine decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from orgauthz.cache.redis import RedisDecisionCache
from orgauthz.engine.authorizer import Ask, Authorizer, Decision, DecisionKey
from orgauthz.engine.engine import Engine

Lookup = Literal["unloaded", "always"]


class RedisCachingAuthorizer:
    def __init__(
        self, inner: Authorizer, engine: Engine, cache: RedisDecisionCache, *, lookup: Lookup = "unloaded"
    ) -> None:
        self.inner = inner
        self.engine = engine
        self.cache = cache
        self.lookup = lookup
        self.skipped = 0  # in-process misses that went straight to the engine (organization loaded)

    def try_cached(self, ask: Ask) -> Decision | None:
        """By default Redis is not asked about an organization loaded here: the engine answers
        at once (its answer is still queued for Redis, for the other replicas)."""
        if self.lookup == "always" or ask.explain:
            return None
        decision = self.inner.try_cached(ask)
        if decision is not None:
            self.skipped += 1
            self._share(decision)
        return decision

    async def decide(self, asks: Sequence[Ask]) -> list[Decision]:
        return [await self._one(ask) for ask in asks]

    async def _one(self, ask: Ask) -> Decision:
        target = ask.target
        key = (
            None
            if target is None or ask.explain
            else DecisionKey.at(self.engine, ask.subject, target, ask.scope, ask.res)
        )
        if key is not None:
            known = self.engine.knows(key.org_id, key.subject)  # None: the organization is not loaded here
            if known is not False and (self.lookup == "always" or known is None):
                hit = await self.cache.get(key)
                # The feed may have applied a change to this organization during the round
                # trip: the entry then answers for an older state and is not used.
                if hit is not None and key.still_current(self.engine):
                    # Loaded in the background, so this replica stops paying a Redis round
                    # trip per new question about it.
                    self.engine.load_soon(key.org_id)
                    return Decision(hit, key.reflects(self.engine.applied), key=key)
            else:
                self.skipped += 1
        (decision,) = await self.inner.decide([ask])
        self._share(decision)
        return decision

    def _share(self, decision: Decision) -> None:
        """Queues a keyed decision for Redis (a subject the organization does not know has no key)."""
        if decision.key is not None:
            self.cache.put(decision.key, decision.allowed)
