"""PlanObjects and ListScopes on an object agree with Check on every object (R26, R27).

For random worlds (those of test_equivalence.py: ACLs on deployments, work pools and blocks,
deployments naming work pools, teams, grant entries) loaded into the full :class:`Engine`
from a SQLite store written by the importer:

- ``Engine.plan(subject, target, workspace, kind, scope)`` is the filter a caller applies to
  its own objects: ALL means Check allows the scope on every object of the kind,
  ALL_EXCEPT ids that it denies exactly those, ONLY ids that it allows exactly those. It is
  held to ``Engine.decide`` on every object id of the world and on ids it has never seen.
- ``Engine.scopes(subject, target, obj)`` is the set of scopes ``Engine.decide`` allows on
  that object.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from orgauthz.domain import lines as L
from orgauthz.engine.engine import ALL, ALL_EXCEPT, ONLY, Engine, Plan
from orgauthz.store.db import open_store
from orgauthz.store.importer import import_document
from tests.decisions.test_equivalence import (
    OBJECT_IDS,
    OBJECT_SCOPES,
    POLICY,
    UNKNOWN_WORKSPACE,
    WS_SCOPES,
    World,
    worlds,
)

# Ids no ACL or work pool of any world names: the sidecar cannot know every object (R26).
NEVER_SEEN = ["none", "x:y"]


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("objects") / "template.db"
    db = open_store(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


def _agrees(plan: Plan, allowed: dict[str, bool]) -> bool:
    """Whether the plan, applied to the objects, lets through exactly those Check allows."""
    if list(plan.ids) != sorted(set(plan.ids)) or not set(plan.ids) <= set(allowed):
        return False
    if plan.kind == ALL:
        return not plan.ids and all(allowed.values())
    if plan.kind == ALL_EXCEPT:
        return bool(plan.ids) and all(ok == (ident not in plan.ids) for ident, ok in allowed.items())
    if plan.kind == ONLY:
        return all(ok == (ident in plan.ids) for ident, ok in allowed.items())
    return False


async def _check_world(world: World, engine: Engine) -> None:
    """Asserts every plan and every object's scopes against Check."""
    await engine.start()
    for ws in world.workspaces:
        if ws == UNKNOWN_WORKSPACE:
            continue
        target = engine.resolve(workspace=ws)
        assert target is not None
        assert await engine.ensure_loaded(target.org_id)
        for sub in world.subjects:
            for kind, ids in OBJECT_IDS.items():
                for scope in OBJECT_SCOPES[kind]:
                    plan = engine.plan(sub, target, ws, kind, scope)
                    allowed = {
                        ident: engine.decide(sub, target, scope, L.object_need(POLICY, ws, f"{kind}:{ident}", scope))
                        for ident in [*ids, *NEVER_SEEN]
                    }
                    assert _agrees(plan, allowed), (sub, ws, kind, scope, plan, allowed)
            for obj in [*world.objects(ws), "block:none"]:
                decided = {s for s in WS_SCOPES if engine.decide(sub, target, s, L.object_need(POLICY, ws, obj, s))}
                assert set(engine.scopes(sub, target, obj)) == decided, (sub, ws, obj)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(world=worlds())
def test_plan_and_scopes_agree_with_check_on_every_object(world: World, sqlite_file: Path) -> None:
    world = world.importable()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        shutil.copy(sqlite_file, path)
        db = open_store(f"sqlite:///{path}")
        try:
            if world.orgs:
                import_document(db, POLICY, world.document())
            asyncio.run(_check_world(world, Engine(POLICY, db)))
        finally:
            db.dispose()
