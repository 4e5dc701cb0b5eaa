"""Organizations load on demand without holding up the event loop (SPEC §5).

Building the largest organization of ``large`` takes about 0.4 s of Python; in one piece,
every call in flight waited for all of it. The engine reads an organization's rows as
driver tuples and adds its lines in slices, sleeping after each (gRPC's poller thread hands
calls over only while the loop thread sleeps); the result decides exactly as one built at
once, takes in changes committed meanwhile, and is not lost when its first caller goes away.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from orgauthz.domain import lines as L
from orgauthz.domain.changes import ChangeSet
from orgauthz.domain.policy import PolicySet
from orgauthz.engine import engine as engine_module
from orgauthz.engine.enforcer import OrgEnforcer
from orgauthz.engine.engine import Engine
from orgauthz.store import base as store
from orgauthz.store import db as db_module
from orgauthz.store import snapshots
from orgauthz.store.base import Store
from orgauthz.store.models import WorkspaceGrant
from tests.support.orgs import seed
from tests.support.store import commit_rows_now

ROLES = ("Viewer", "Runner", "Developer", "Owner")


def _org(org: str, ws: str, members: int, first_role: str = "Admin") -> dict[str, object]:
    return {
        "id": org,
        "handle": org,
        "name": org.title(),
        "members": [
            {"user": f"{org}-admin", "email": f"{org}-admin@{org}.test", "role": first_role},
            *({"user": f"u{i}", "email": f"u{i}@example.test", "role": "Member"} for i in range(members)),
        ],
        "workspaces": [
            {
                "id": f"{ws}{w}",
                "handle": f"{ws}{w}",
                "name": f"{ws.upper()}{w}",
                **({"default_role": "Viewer"} if w == 0 else {}),
                "access": [{"subject": f"user:u{i}", "role": ROLES[(i + w) % 4]} for i in range(w, members, 2)],
            }
            for w in range(4)
        ],
    }


# acme: 13 members (26 lines), 22 grants, 1 default role: 49 lines. globex shares the users
# u0..u5 and grants them roles in its own workspaces, which acme's snapshot must not hold.
DOC = {"organizations": [_org("acme", "w", 12), _org("globex", "g", 6)]}
PAUSE = engine_module._BUILD_PAUSE_S


class Pauses(list[float]):
    """The delays the engine's build slept for; ``at_first`` runs at its first pause."""

    at_first: Callable[[], Awaitable[None]] | None = None


@pytest.fixture
def in_slices(monkeypatch: pytest.MonkeyPatch) -> Pauses:
    """Every part of 3 lines is a slice (a pause after each); the engine's pauses are
    recorded (``asyncio.sleep`` called from the engine module, nowhere else)."""
    monkeypatch.setattr(engine_module, "_BUILD_PART", 3)
    monkeypatch.setattr(engine_module, "_BUILD_SLICE_S", 0.0)
    monkeypatch.setattr(db_module, "_ROWS_PART", 2)  # rows read in parts of 2 too
    pauses = Pauses()
    real = asyncio.sleep

    async def hooked(delay: float) -> None:
        if pauses.at_first is not None and len(pauses) == 1:
            await pauses.at_first()
        await real(delay)

    def sleep(delay: float, result: object = None) -> Awaitable[object]:
        if sys._getframe(1).f_globals.get("__name__") != engine_module.__name__:
            return real(delay, result)
        pauses.append(delay)
        return hooked(delay)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return pauses


def _building(pauses: Pauses) -> asyncio.Event:
    """Set at the build's first pause."""
    building = asyncio.Event()

    async def at_first() -> None:
        building.set()

    pauses.at_first = at_first
    return building


async def _started(db: Store, policy: PolicySet) -> Engine:
    seed(db, policy, DOC)
    engine = Engine(policy, db, gc_freeze=False)
    await engine.start()
    return engine


async def test_s5_an_organization_is_built_in_slices_with_a_real_sleep_after_each(
    db: Store, policy: PolicySet, in_slices: Pauses
) -> None:
    engine = await _started(db, policy)
    assert await engine.ensure_loaded("acme")
    assert in_slices == [PAUSE] * 17  # 49 lines in parts of 3
    assert PAUSE > 0  # sleep(0) does not let gRPC's poller thread run

    # Its rows are acme's own, as the ORM reads them.
    loaded = snapshots.load_org(db, "acme")
    assert loaded is not None
    snap = loaded[0]
    with db.read() as s:
        orm = s.execute(
            select(WorkspaceGrant.workspace_id, WorkspaceGrant.subject, WorkspaceGrant.role).where(
                WorkspaceGrant.org_id == "acme"
            )
        ).all()
    assert sorted(snap.grants) == sorted(tuple(r) for r in orm)
    assert len(snap.grants) == 22
    assert len(snap.members) == 13

    # It decides exactly as the organization built in one piece.
    whole = OrgEnforcer(
        policy,
        L.org_domain("acme"),
        snap.policy_lines(policy),
        L.include_lines(policy),
        list(snap.decision_lines(policy)),
    )
    subjects = ["user:acme-admin", "user:globex-admin", "user:nobody", *(f"user:u{i}" for i in range(12))]
    checked = allowed = 0
    for w in range(4):
        target = engine.resolve(workspace=f"w{w}")
        assert target is not None
        for subject in subjects:
            for scope in policy.workspace_scopes:
                expected = whole.enforce(subject, target.domain, scope)
                assert engine.decide(subject, target, scope) is expected, (subject, w, scope)
                checked += 1
                allowed += expected
    assert 0 < allowed < checked


async def test_s3_a_revoke_committed_while_an_organization_is_built_is_reflected(
    db: Store, policy: PolicySet, in_slices: Pauses
) -> None:
    """u2 is a Developer in w0 when the snapshot is read; the revoke commits (and the feed
    passes it by: the organization is not loaded yet) during the build."""
    engine = await _started(db, policy)

    def revoke() -> tuple[int, ChangeSet]:
        return commit_rows_now(
            db,
            "acme",
            "workspace-access.revoked",
            store.delete(WorkspaceGrant, workspace_id="w0", subject="user:u2"),
            remove=(L.grant_line("user:u2", "w0", "Developer"),),
        )

    async def at_first() -> None:
        engine.apply(*await asyncio.to_thread(revoke))

    in_slices.at_first = at_first
    assert await engine.ensure_loaded("acme")
    assert in_slices
    target = engine.resolve(workspace="w0")
    assert target is not None
    assert not engine.decide("user:u2", target, "manage_flows")
    assert engine.decide("user:u2", target, "see_flows")  # the default role Viewer remains (R17)
    other = engine.resolve(workspace="w2")
    assert other is not None
    assert engine.decide("user:u2", other, "see_flows")  # Viewer in w2 (no default role there): untouched


async def test_s5_a_cancelled_first_caller_does_not_fail_the_others_waiting_for_the_load(
    db: Store, policy: PolicySet, in_slices: Pauses
) -> None:
    engine = await _started(db, policy)
    building = _building(in_slices)
    first = asyncio.create_task(engine.ensure_loaded("acme"))
    second = asyncio.create_task(engine.ensure_loaded("acme"))
    await building.wait()
    first.cancel()
    assert await second is True
    with pytest.raises(asyncio.CancelledError):
        await first
    assert engine.loaded("acme")
    assert engine.loads == 1


async def test_s5_an_organization_dropped_before_its_caller_resumes_is_loaded_again(
    db: Store, policy: PolicySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers resume a turn or two after the load installed the organization; a change
    that drops it meanwhile (custom roles changed, say) must not make it "not found"."""
    engine = await _started(db, policy)
    load = engine._load
    loads = 0

    async def dropped_at_once(org_id: str) -> None:
        nonlocal loads
        loads += 1
        await load(org_id)
        if loads == 1:
            asyncio.get_running_loop().call_soon(engine._orgs.pop, org_id, None)

    monkeypatch.setattr(engine, "_load", dropped_at_once)
    assert await engine.ensure_loaded("acme") is True
    assert loads == 2
    assert engine.loaded("acme")


async def test_s5_stopping_the_engine_cancels_the_loads_in_flight(
    db: Store, policy: PolicySet, in_slices: Pauses
) -> None:
    engine = await _started(db, policy)
    building = _building(in_slices)
    caller = asyncio.create_task(engine.ensure_loaded("acme"))
    await building.wait()
    await engine.close()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not engine.loaded("acme")
    assert engine._loading == {}
