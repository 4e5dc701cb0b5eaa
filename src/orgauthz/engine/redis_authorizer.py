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

import asyncio
from typing import Literal

from orgauthz.cache.redis import RedisDecisionCache
from orgauthz.engine.authorizer import Authorizer, Decision, answered_at
from orgauthz.engine.engine import Engine, Target

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
        self._loads: dict[str, asyncio.Task[bool]] = {}

    def _load_soon(self, org: str) -> None:
        """After a Redis hit for an organization not loaded here, loads it in the background,
        so the replica stops paying a Redis round trip per new question (once per org)."""
        if org in self._loads or self.engine.loaded(org):
            return
        task = asyncio.create_task(self.engine.ensure_loaded(org), name=f"orgauthz-load-{org}")
        self._loads[org] = task
        task.add_done_callback(lambda t: (self._loads.pop(org, None), t.cancelled() or t.exception()))

    async def check(self, subject: str, target: Target | None, scope: str, *, explain: bool) -> Decision:
        if target is None or explain:
            return await self.inner.check(subject, target, scope, explain=explain)
        engine, org = self.engine, target.org_id
        rev = engine.org_revision.get(org)
        if rev is None:
            return await self.inner.check(subject, target, scope, explain=False)
        known = engine.knows(org, subject)  # None: the organization is not loaded here
        if known is False:
            self.skipped += 1
            return await self.inner.check(subject, target, scope, explain=False)
        if self.lookup == "always" or known is None:
            hit = await self.cache.get(org, rev, subject, target.domain, scope)
            # The feed may have applied a change to this organization during the round trip:
            # the entry then answers for an older state and is not used.
            if hit is not None and engine.org_revision.get(org) == rev:
                self._load_soon(org)
                return Decision(hit, answered_at(engine, org))
        else:
            self.skipped += 1
        decision = await self.inner.check(subject, target, scope, explain=False)
        # Keyed at the revision the engine decided at (the organization may have moved on
        # while it loaded); no await between the decision and this read.
        rev = engine.org_revision.get(org)
        # Not loaded: the organization vanished meanwhile. Unknown: a deny anyone finds at once.
        if rev is not None and engine.knows(org, subject):
            self.cache.put(org, rev, subject, target.domain, scope, decision.allowed)
        return decision
