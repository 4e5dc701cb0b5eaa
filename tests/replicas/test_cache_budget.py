"""A replica's total bound on what it keeps in Redis frees up only as its fields expire
(SPEC §3). A fake clock: nothing here waits."""

from __future__ import annotations

from orgauthz.cache.budget import FieldBudget


def test_s3_a_replicas_total_bound_frees_up_as_its_fields_expire() -> None:
    now = [0.0]
    budget = FieldBudget(100, 600, clock=lambda: now[0])
    budget.spend(60)
    now[0] = 70.0
    budget.spend(40)
    assert budget.room() == 0
    now[0] = 600.0  # the first fields may still be there (their hash's TTL began at most then)
    assert budget.room() == 0
    now[0] = 660.0  # counted a tenth of a TTL wide: those added from 0 s on are gone by now
    assert budget.room() == 60
    now[0] = 729.0
    assert budget.room() == 60
    now[0] = 730.0
    assert budget.room() == 100
