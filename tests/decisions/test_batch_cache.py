"""BatchCheck's one-loop cache read must never answer from before a revoke (SPEC §3)."""

from __future__ import annotations

from collections.abc import Sequence

from orgauthz.cache.memory import MemoryCache
from orgauthz.domain.policy import PolicySet
from orgauthz.engine.authorizer import CachingAuthorizer, Decision, EngineAuthorizer
from orgauthz.engine.engine import Engine, Target
from orgauthz.store.base import Store
from tests.support.orgs import ACME_ONE_ADMIN, doc, seed

DOC = doc(ACME_ONE_ADMIN)


class ReindexingOnMiss:
    """The engine's authorizer; its first answer awaits while the index is re-read and the
    organization's revision moves on (a revoke applied meanwhile)."""

    def __init__(self, engine: Engine) -> None:
        self.inner = EngineAuthorizer(engine)
        self.engine = engine
        self.done = False

    async def check(self, subject: str, target: Target | None, scope: str, *, explain: bool) -> Decision:
        if not self.done:
            self.done = True
            self.engine.org_revision = {**self.engine.org_revision, "acme": self.engine.org_revision["acme"] + 1}
        return await self.inner.check(subject, target, scope, explain=explain)


def _answer(allowed: bool, revision: int, reasons: Sequence[str]) -> tuple[bool, int]:
    return allowed, revision


async def test_a_batch_reads_the_revision_afresh_after_a_miss(db: Store, policy: PolicySet) -> None:
    seed(db, policy, DOC)
    engine = Engine(policy, db, gc_freeze=False)
    await engine.start()
    assert await engine.ensure_loaded("acme")
    cache = MemoryCache()
    caching = CachingAuthorizer(ReindexingOnMiss(engine), engine, cache)
    target = engine.resolve(workspace="acme-prod")
    assert target is not None
    # An entry cached at the current revision: alice may see flows.
    cache.put(("acme", engine.org_revision["acme"], "user:alice", target.domain, "see_flows"), True)
    rows = [
        ("user:bob", "acme-prod", "", "see_flows", False),  # a miss: the index is re-read meanwhile
        ("user:alice", "acme-prod", "", "see_flows", False),  # must not hit the entry from before
    ]
    out, _ = await caching.batch(rows, engine.resolve, _answer)
    assert len(out) == 2
    assert cache.hits == 0  # the second row was decided afresh, not taken from the old revision
