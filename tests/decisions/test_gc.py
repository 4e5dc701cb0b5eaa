"""Loaded organizations leave the cyclic garbage collector's passes (``gc_freeze``).

A full collection walks every tracked container; with the ``large`` data set loaded that
took 50-100 ms on the event loop, a stall for every call in flight (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orgauthz.domain.policy import PolicySet
from orgauthz.engine.authorizer import EngineAuthorizer
from orgauthz.engine.decisions import Decisions, Question
from orgauthz.engine.engine import Engine
from orgauthz.store.base import Store
from tests.support.orgs import ACME_ONE_ADMIN, doc, seed

DOC = doc(ACME_ONE_ADMIN)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """What a test freezes goes back to the collector afterwards (one process runs many)."""
    yield
    gc.unfreeze()


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


@pytest.mark.parametrize("freeze", [True, False])
async def test_a_loaded_organization_is_out_of_the_collectors_passes_only_with_gc_freeze(
    db: Store, policy: PolicySet, freeze: bool, unfrozen: None
) -> None:
    seed(db, policy, DOC)
    engine = Engine(policy, db, gc_freeze=freeze)
    await engine.start()
    assert await engine.ensure_loaded("acme")
    enforcer = engine._state("acme").enforcer
    assert _tracked(enforcer) is not freeze
    assert (gc.get_freeze_count() > 0) is freeze
    target = engine.resolve(workspace="acme-prod")
    assert target is not None
    assert engine.decide("user:alice", target, "see_flows")  # decisions are unchanged


async def test_remembered_valid_questions_leave_the_collectors_passes(db: Store, policy: PolicySet) -> None:
    """Decisions remembers every question it found valid (up to 100,000); kept as named
    tuples they stayed tracked and every full collection walked them all."""
    seed(db, policy, DOC)
    engine = Engine(policy, db, gc_freeze=False)
    await engine.start()
    decisions = Decisions(engine, EngineAuthorizer(engine), None)
    for i in range(50):
        await decisions.check(Question(f"user:u{i}", "acme-prod", "", "see_flows"))
    answers = await decisions.batch([(f"user:b{i}", "acme-prod", "", "see_flows", False, "") for i in range(50)], 0)
    assert not any(d.allowed for d in answers)
    gc.collect()
    assert len(decisions._valid) == 100
    assert not [q for q in decisions._valid if gc.is_tracked(q)]
