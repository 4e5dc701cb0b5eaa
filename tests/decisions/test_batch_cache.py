"""BatchCheck's cache tier must never file an answer under a revision older than the state it
was decided on (SPEC §3)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from orgauthz.cache.memory import MemoryCache
from orgauthz.domain.policy import PolicySet
from orgauthz.engine.authorizer import Ask, CachingAuthorizer, Decision, DecisionKey, EngineAuthorizer
from orgauthz.engine.engine import Engine
from orgauthz.store.base import Store
from tests.support.orgs import ACME_ONE_ADMIN, doc, seed

DOC = doc(ACME_ONE_ADMIN)


class ReindexingOnMiss:
    """The engine's authorizer, with nothing at hand; its first answer awaits while the
    index is re-read and the organization's revision moves on (a revoke applied meanwhile)."""

    def __init__(self, engine: Engine) -> None:
        self.inner = EngineAuthorizer(engine)
        self.engine = engine
        self.done = False

    def try_cached(self, ask: Ask) -> Decision | None:
        return None

    async def decide(self, asks: Sequence[Ask]) -> list[Decision]:
        if not self.done:
            self.done = True
            await asyncio.sleep(0)
            self.engine.org_revision = {**self.engine.org_revision, "acme": self.engine.org_revision["acme"] + 1}
        return await self.inner.decide(asks)


async def test_s3_a_batch_files_an_answer_under_the_revision_it_was_decided_at(db: Store, policy: PolicySet) -> None:
    """Cached answers are taken in one pass before anything awaits; a miss decided after the
    organization's revision moved is filed under the new revision, never the one the batch
    started at (where it would answer for a state from before the change)."""
    seed(db, policy, DOC)
    engine = Engine(policy, db, gc_freeze=False)
    await engine.start()
    assert await engine.ensure_loaded("acme")
    cache = MemoryCache()
    caching = CachingAuthorizer(ReindexingOnMiss(engine), engine, cache)
    target = engine.resolve(workspace="acme-prod")
    assert target is not None
    before = engine.org_revision["acme"]
    # An entry cached at the current revision: alice may see flows.
    cache.put(DecisionKey("acme", before, "user:alice", target.domain, "see_flows"), True)
    missed, alice = await caching.decide(
        [Ask("user:alice", target, "manage_flows"), Ask("user:alice", target, "see_flows")]
    )
    assert alice.allowed
    assert alice.key == DecisionKey("acme", before, "user:alice", target.domain, "see_flows")
    assert alice.revision >= before
    assert missed.key == DecisionKey("acme", before + 1, "user:alice", target.domain, "manage_flows")
    assert DecisionKey("acme", before, "user:alice", target.domain, "manage_flows") not in cache._data
    assert cache._data[missed.key] is missed.allowed
