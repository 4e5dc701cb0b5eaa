"""The decision path, composed of layers that share one protocol: :class:`Authorizer`.

``counting → memory cache → [Redis] → engine`` (:meth:`Replication.build
<orgauthz.engine.replication.Replication.build>`). Every layer answers a batch of resolved
questions (:meth:`Authorizer.decide`; a Check is a batch of one) and may answer one
question at once, without an ``await`` (:meth:`Authorizer.try_cached`): the memory cache
from a hit, the engine when it holds the organization. A layer asks the next one only for
what it cannot answer itself.

A cacheable answer carries its :class:`DecisionKey`: the organization's revision read in the
same step as the decision (no ``await`` between them), so an answer is never filed under a
revision newer than the state it was decided on. After any change to an organization its
revision grows: entries decided before a revoke can no longer be found (SPEC §3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from orgauthz.cache.memory import MemoryCache
from orgauthz.engine.engine import NO_ACCESS, Engine, Target


class Ask(NamedTuple):
    """One resolved question (``target`` None: the workspace or organization names nothing)."""

    subject: str
    target: Target | None
    scope: str
    explain: bool = False
    res: str = ""  # the object node the scope needs (R26; lines.object_need), "" for none


class DecisionKey(NamedTuple):
    """A decision's key in every cache tier (memory and Redis), and the revision it reflects.

    A named tuple: the memory tier files answers under it as is, and a BatchCheck makes one
    per item."""

    org_id: str
    revision: int  # the organization's revision when the question was decided or looked up
    subject: str
    domain: str
    scope: str
    # The object node (R26), "" for none. Any write to the organization, an ACL's included,
    # moves ``revision``: an answer decided before an ACL changed is never found after it.
    res: str = ""

    @classmethod
    def at(cls, engine: Engine, subject: str, target: Target, scope: str, res: str = "") -> DecisionKey | None:
        """The key as of now; None while the organization is unknown here."""
        revision = engine.org_revision.get(target.org_id)
        return None if revision is None else cls(target.org_id, revision, subject, target.domain, scope, res)

    def reflects(self, applied: int) -> int:
        """The revision an answer under this key reflects: everything applied here (``applied``),
        or the organization's own revision when it was loaded from a newer snapshot."""
        return self.revision if self.revision > applied else applied

    def still_current(self, engine: Engine) -> bool:
        """Whether the organization is still at this key's revision (no change applied since)."""
        return engine.org_revision.get(self.org_id) == self.revision


@dataclass(slots=True)
class Decision:
    allowed: bool
    revision: int
    reasons: Sequence[str] = ()
    key: DecisionKey | None = None  # set when the answer may be cached: under this key


def answered_at(engine: Engine, org_id: str) -> int:
    """The revision an answer about ``org_id`` given now reflects (see :meth:`DecisionKey.reflects`)."""
    return max(engine.applied, engine.org_revision.get(org_id, 0))


class Authorizer(Protocol):
    def try_cached(self, ask: Ask) -> Decision | None:
        """The decision if this layer (or one below it) has it at hand, without an ``await``;
        None: ask :meth:`decide`."""

    async def decide(self, asks: Sequence[Ask]) -> list[Decision]:
        """One decision per question, in order; never raises for unknown subjects or targets."""


class EngineAuthorizer:
    """Decides with the engine, loading the organization on first use."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def try_cached(self, ask: Ask) -> Decision | None:
        target = ask.target
        if target is None or not self.engine.loaded(target.org_id):
            return None
        return self._decided(ask, target)

    async def decide(self, asks: Sequence[Ask]) -> list[Decision]:
        engine = self.engine
        out: list[Decision] = []
        for ask in asks:
            target = ask.target
            if target is None or not (engine.loaded(target.org_id) or await engine.ensure_loaded(target.org_id)):
                out.append(Decision(False, engine.applied, [NO_ACCESS] if ask.explain else []))
            else:
                out.append(self._decided(ask, target))
        return out

    def _decided(self, ask: Ask, target: Target) -> Decision:
        """The organization is loaded: decided now, keyed at the revision decided at. A subject
        the organization does not know gets no key: the engine denies it in one set lookup,
        and a stream of nonexistent subjects would otherwise fill the caches with denials."""
        engine = self.engine
        subject, scope, res = ask.subject, ask.scope, ask.res
        allowed = engine.decide(subject, target, scope, res)
        reasons = engine.explain(subject, target, scope, res) if ask.explain else []
        key = DecisionKey.at(engine, subject, target, scope, res) if engine.knows(target.org_id, subject) else None
        return Decision(allowed, answered_at(engine, target.org_id), reasons, key)


class CachingAuthorizer:
    """Serves repeated decisions from process memory; explanations always go to the engine."""

    def __init__(self, inner: Authorizer, engine: Engine, cache: MemoryCache) -> None:
        self.inner = inner
        self.engine = engine
        self.cache = cache

    def try_cached(self, ask: Ask) -> Decision | None:
        target = ask.target
        if target is None or ask.explain:
            return None
        key = DecisionKey.at(self.engine, ask.subject, target, ask.scope, ask.res)
        if key is not None:
            found = self.cache.get(key)
            if found is not None:
                return Decision(found, key.reflects(self.engine.applied), key=key)
        return self._kept(self.inner.try_cached(ask))

    async def decide(self, asks: Sequence[Ask]) -> list[Decision]:
        """Every question this layer or the ones below answer at once is answered in one pass
        (no ``await``); the rest go down in one call. The pass is :meth:`try_cached` with its
        calls unfolded: a warm BatchCheck is mostly this loop (bench/NOTES.md item 12)."""
        engine, inner = self.engine, self.inner
        revisions, applied, get = engine.org_revision, engine.applied, self.cache.lookup()
        out: list[Decision | None] = []
        missed: list[int] = []
        hits = lookups = 0
        for i, ask in enumerate(asks):
            target = ask.target
            if target is not None and not ask.explain:
                revision = revisions.get(target.org_id)
                if revision is not None:
                    key = DecisionKey(target.org_id, revision, ask.subject, target.domain, ask.scope, ask.res)
                    lookups += 1
                    found = get(key)
                    if found is not None:
                        hits += 1
                        out.append(Decision(found, revision if revision > applied else applied, key=key))
                        continue
                decision = self._kept(inner.try_cached(ask))
                if decision is not None:
                    out.append(decision)
                    continue
            out.append(None)
            missed.append(i)
        self.cache.counted(hits, lookups - hits)
        if missed:
            for i, d in zip(missed, await self.inner.decide([asks[i] for i in missed]), strict=True):
                out[i] = self._kept(d)
        return out  # type: ignore[return-value]  # every None was replaced

    def _kept(self, decision: Decision | None) -> Decision | None:
        if decision is not None and decision.key is not None:
            self.cache.put(decision.key, decision.allowed)
        return decision


class CountingAuthorizer:
    """The outermost layer: counts every decision, allowed and denied (``count(allowed, denied)``)."""

    def __init__(self, inner: Authorizer, count: Callable[[int, int], None]) -> None:
        self.inner = inner
        self.count = count

    def try_cached(self, ask: Ask) -> Decision | None:
        decision = self.inner.try_cached(ask)
        if decision is not None:
            self.count(decision.allowed, not decision.allowed)
        return decision

    async def decide(self, asks: Sequence[Ask]) -> list[Decision]:
        decisions = await self.inner.decide(asks)
        allowed = sum(d.allowed for d in decisions)
        self.count(allowed, len(decisions) - allowed)
        return decisions
