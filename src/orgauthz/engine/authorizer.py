"""The decision path, composed: ``Authorizer`` ← engine, wrapped by caching.

:class:`EngineAuthorizer` asks Casbin; :class:`CachingAuthorizer` answers repeated
questions from memory, keyed by the organization's revision. Both take a resolved
:class:`Target` (None: the workspace or organization names nothing, a plain deny).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from orgauthz.cache.memory import MemoryCache
from orgauthz.engine.engine import NO_ACCESS, Engine, Target

T = TypeVar("T")
Row = tuple[str, str, str, str, bool]  # subject, workspace, organization, scope, explain
_NO_REASONS: tuple[str, ...] = ()


@dataclass(slots=True)
class Decision:
    allowed: bool
    revision: int
    reasons: list[str] = field(default_factory=list)


def answered_at(engine: Engine, org_id: str) -> int:
    """The revision a decision about ``org_id`` reflects: everything applied here, or the
    organization's own revision when it was loaded from a snapshot newer than the feed."""
    return max(engine.applied, engine.org_revision.get(org_id, 0))


class Authorizer(Protocol):
    async def check(self, subject: str, target: Target | None, scope: str, *, explain: bool) -> Decision:
        """The decision for one request; never raises for unknown subjects or targets."""
        ...


class EngineAuthorizer:
    """Decides with the engine, loading the organization on first use."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def check(self, subject: str, target: Target | None, scope: str, *, explain: bool) -> Decision:
        engine = self.engine
        if target is None or not (engine.loaded(target.org_id) or await engine.ensure_loaded(target.org_id)):
            reasons = [NO_ACCESS] if explain else []
            return Decision(False, engine.applied, reasons)
        allowed = engine.decide(subject, target, scope)
        reasons = engine.explain(subject, target, scope) if explain else []
        return Decision(allowed, answered_at(engine, target.org_id), reasons)


class CachingAuthorizer:
    """Serves repeated decisions from process memory; explanations always go to the engine.

    A subject the loaded organization does not know is not remembered: the engine denies it
    in one set lookup, and a stream of nonexistent subjects would otherwise fill the cache
    (and the process) with denials and push out the answers worth keeping."""

    def __init__(self, inner: Authorizer, engine: Engine, cache: MemoryCache) -> None:
        self.inner = inner
        self.engine = engine
        self.cache = cache

    def cached(self, subject: str, target: Target, scope: str) -> Decision | None:
        """The cached decision without an explanation, or None on a miss (no await: the hot path)."""
        engine = self.engine
        rev = engine.org_revision.get(target.org_id, -1)
        allowed = self.cache.get((target.org_id, rev, subject, target.domain, scope))
        if allowed is None:
            return None
        return Decision(allowed, max(engine.applied, rev if rev > 0 else 0))

    async def batch(
        self,
        rows: Sequence[Row],
        resolve: Callable[[str, str], Target | None],
        answer: Callable[[bool, int, Sequence[str]], T],
    ) -> tuple[list[T], int]:
        """``answer(allowed, revision, reasons)`` for each row, in order, and how many were
        allowed. What :meth:`cached` and :meth:`check` do per row, in one loop: a BatchCheck
        of cached decisions is mostly this loop."""
        engine = self.engine
        get = self.cache.lookup()
        out: list[T] = []
        allowed = hits = 0
        try:
            for subject, workspace, organization, scope, explain in rows:
                target = resolve(workspace, organization)
                if target is not None and not explain:
                    org = target.org_id
                    # Read afresh per row: a miss below awaits, and a re-read of the index
                    # replaces engine.org_revision meanwhile (a saved reference would keep
                    # finding entries from before a revoke).
                    rev = engine.org_revision.get(org, -1)
                    found = get((org, rev, subject, target.domain, scope))
                    if found is not None:
                        hits += 1
                        allowed += found
                        applied = engine.applied  # max(applied, rev), without the call: applied >= 0
                        out.append(answer(found, rev if rev > applied else applied, _NO_REASONS))
                        continue
                d = await self.check(subject, target, scope, explain=explain)
                allowed += d.allowed
                out.append(answer(d.allowed, d.revision, d.reasons))
        finally:
            self.cache.counted(hits, 0)
        return out, allowed

    async def check(self, subject: str, target: Target | None, scope: str, *, explain: bool) -> Decision:
        if target is None or explain:
            return await self.inner.check(subject, target, scope, explain=explain)
        hit = self.cached(subject, target, scope)
        if hit is not None:
            return hit
        engine = self.engine
        decision = await self.inner.check(subject, target, scope, explain=False)
        if engine.knows(target.org_id, subject) is False:
            return decision
        # The revision may have moved while the organization loaded: key it at the revision
        # it was decided at, never at an older one.
        key = (target.org_id, engine.org_revision.get(target.org_id, -1), subject, target.domain, scope)
        self.cache.put(key, decision.allowed)
        return decision
