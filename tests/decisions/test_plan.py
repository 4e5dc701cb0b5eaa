"""PlanObjects agrees with Check on every object (R26, R27).

:meth:`Engine.plan` decides a workspace's governed objects with
:meth:`OrgEnforcer.enforce_each`, which evaluates the matcher in full only for the first object
down each path of what the matcher did with ``r.res`` and replays those steps for the others.
Here its answers are compared with one :meth:`OrgEnforcer.enforce` per object: on the
largest organization of the benchmark's ``small`` data set (ACLs of every kind, grant entries,
teams, deployments governed through their work pool's ACL), and under a matcher that reads
``r.res`` in every way the matcher grammar allows (``==``, ``!=``, its truth, a function).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bench import generate
from orgauthz.domain import lines as L
from orgauthz.domain.policy import DEFAULT_POLICY_DIR, PolicySet, load_policy
from orgauthz.engine.enforcer import OrgEnforcer
from orgauthz.engine.engine import ALL, ALL_EXCEPT, ONLY, Engine
from orgauthz.store import snapshots
from orgauthz.store.base import Store
from orgauthz.store.db import open_store
from orgauthz.store.importer import import_document

POLICY = load_policy()


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The largest organization of ``small`` (o0000: 341 ACLs) written by the importer."""
    p = generate.plan(generate.shape_named("small"))
    org = next(generate.organizations(p, POLICY))
    db = open_store(f"sqlite:///{tmp_path_factory.mktemp('plan') / 'o0000.db'}")
    db.migrate()
    import_document(db, POLICY, {"organizations": [org]})
    yield db
    db.dispose()


@pytest.fixture
async def engine(bench_store: Store) -> AsyncIterator[Engine]:
    e = Engine(POLICY, bench_store)
    await e.start()
    assert await e.ensure_loaded("o0000")
    yield e
    await e.close()


def _governed(snap: L.OrgSnapshot) -> dict[tuple[str, str], list[str]]:
    """(workspace, kind) -> ids an ACL governs: its own, or its work pool's (R27)."""
    out: dict[tuple[str, str], set[str]] = {}
    for ws, obj in snap.acls:
        kind, _, ident = obj.partition(":")
        out.setdefault((ws, kind), set()).add(ident)
    for (ws, dep), pool in snap.pools.items():
        if (ws, pool) in snap.acls:
            out.setdefault((ws, "deployment"), set()).add(dep.partition(":")[2])
    return {k: sorted(v) for k, v in sorted(out.items())}


def _subjects(snap: L.OrgSnapshot, ws: str, ids: list[str], kind: str, rnd: random.Random) -> list[str]:
    """Who holds a role there (a team's members through it), who the ACLs list, keepers and strangers."""
    holders = [s for w, s, _ in snap.grants if w == ws and not s.startswith("team:")]
    for w, s, _ in snap.grants:
        if w == ws and s.startswith("team:"):
            holders += snap.teams.get(s.removeprefix("team:"), [])
    listed: list[str] = []
    for ident in ids:
        obj = f"{kind}:{ident}"
        for e in snap.acls.get((ws, snap.pools.get((ws, obj), "")), snap.acls.get((ws, obj), [])):
            listed += snap.teams.get(e.actor.removeprefix("team:"), []) if e.actor.startswith("team:") else [e.actor]
    keepers = [f"user:{u}" for u, r in snap.members.items() if r in ("Owner", "Admin")][:2]
    others = [f"user:{u}" for u in rnd.sample(sorted(snap.members), 3)]
    sas = [f"service_account:{a}" for a in sorted(snap.service_accounts)][:2]
    picked = rnd.sample(holders, min(6, len(holders))) + rnd.sample(listed, min(6, len(listed)))
    return sorted({*picked, *keepers, *others, *sas, "user:nobody"})


async def test_plan_agrees_with_check_on_every_governed_object(engine: Engine, bench_store: Store) -> None:
    loaded = snapshots.load_org(bench_store, "o0000")
    assert loaded is not None
    snap = loaded[0]
    governed = _governed(snap)
    assert sum(len(ids) for ids in governed.values()) > 300
    assert any(snap.pools.get((ws, f"deployment:{i}")) for (ws, k), ids in governed.items() for i in ids)
    rnd = random.Random(3)
    answers = {ALL: 0, ALL_EXCEPT: 0, ONLY: 0}
    checks = allowed = 0
    for (ws, kind), ids in governed.items():
        target = engine.resolve(workspace=ws)
        assert target is not None
        scopes = [*sorted(POLICY.object_kinds[kind].governs), "see_flows"]  # see_flows: not governed
        for subject in _subjects(snap, ws, ids, kind, rnd):
            for scope in scopes:
                plan = engine.plan(subject, target, ws, kind, scope)
                answers[plan.kind] += 1
                for ident in [*ids, "n0000"]:  # n0000 has no ACL
                    res = L.object_need(POLICY, ws, f"{kind}:{ident}", scope)
                    check = engine.decide(subject, target, scope, res)
                    planned = ident not in plan.ids if plan.kind in (ALL, ALL_EXCEPT) else ident in plan.ids
                    assert planned == check, (subject, ws, kind, scope, ident, plan)
                    checks += 1
                    allowed += check
    assert all(answers.values()), answers  # every kind of answer came up
    assert 0.1 < allowed / checks < 0.9, (allowed, checks)


def test_enforce_each_equals_enforce_in_any_order(bench_store: Store) -> None:
    loaded = snapshots.load_org(bench_store, "o0000")
    assert loaded is not None
    snap = loaded[0]
    e = OrgEnforcer(
        POLICY,
        L.org_domain("o0000"),
        snap.policy_lines(POLICY),
        L.include_lines(POLICY),
        list(snap.decision_lines(POLICY)),
    )
    rnd = random.Random(5)
    for (ws, kind), ids in _governed(snap).items():
        for subject in _subjects(snap, ws, ids, kind, rnd)[:8]:
            for scope, level in POLICY.object_kinds[kind].governs.items():
                nodes = [L.object_node(ws, f"{kind}:{i}", level) for i in [*ids, "n0000", "n0001"]]
                rnd.shuffle(nodes)
                expected = [e.enforce(subject, L.ws_domain(ws), scope, node) for node in nodes]
                assert e.enforce_each(subject, L.ws_domain(ws), scope, nodes) == expected, (subject, ws, scope)


# -- matchers that read r.res in every way the grammar allows -----------------------------

# Appended to the shipped matcher: r.res compared with a name (== and !=; Casbin's model
# parser takes "#" for a comment, so the names are not object nodes), its truth, and a
# function of Casbin's over it (keyMatch).
_APPENDED = (
    ' || r.res == "special" && g(r.sub, "member", r.org)'
    ' || keyMatch(r.res, "w/block:open*") && g(r.sub, "member", r.org)'
    ' || !r.res && r.obj == "see_deployments" && g(r.sub, "member", r.org)'
    ' || r.res && r.res != "plain" && r.sub == "user:eve"'
)
# A matcher of its own, reading r.res first by its truth (the shipped one compares it with ""
# first, which tells the same apart).
_OWN = (
    "m = g2(p.obj, r.obj) && (g(r.sub, p.sub, r.org) || g(r.sub, p.sub, r.dom)) && "
    '(!r.res || keyMatch(r.res, "w/block:open*") || r.res == "special" || '
    'r.res != "plain" && g4(r.res, r.sub, r.org) || r.res != r.res && r.sub == "user:carol" || '
    'keyMatch(r.res, r.res) && r.sub == "user:eve")'
)


@pytest.fixture(params=["appended", "own"])
def odd_policy(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, PolicySet]:
    target = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICY_DIR, target)
    model = target / "model.conf"
    text = model.read_text(encoding="utf-8")
    start = text.index("\nm = ") + 1
    end = text.index("\n", start)
    if request.param == "appended":
        model.write_text(text[:end] + _APPENDED + text[end:], encoding="utf-8")
    else:
        model.write_text(text[:start] + _OWN + text[end:], encoding="utf-8")
    return request.param, load_policy(target)


def test_enforce_each_follows_every_use_of_r_res(odd_policy: tuple[str, PolicySet]) -> None:
    matcher, policy = odd_policy
    acls = {
        ("w", "deployment:d1"): [L.AclEntry("user:bob", "view")],
        ("w", "deployment:d2"): [L.AclEntry("user:bob", "run"), L.AclEntry("team:t", "manage")],
        ("w", "deployment:d3"): [],
        ("w", "work_pool:p1"): [L.AclEntry("user:carol", "run", grant=True)],
        ("w", "block:open1"): [],
        ("w", "block:open2"): [L.AclEntry("user:bob", "view")],
        ("w", "block:b2"): [L.AclEntry("user:eve", "view")],
    }
    snap = L.OrgSnapshot(
        org_id="o",
        revision=1,
        workspaces={"w": None},
        members={"alice": "Owner", "bob": "Member", "carol": "Member", "dave": "Member", "eve": "Member"},
        service_accounts={"ci": "Member"},
        grants=[("w", "user:bob", "Developer"), ("w", "user:carol", "Viewer"), ("w", "user:dave", "Runner")],
        teams={"t": ["user:dave"]},
        acls=acls,
        pools={("w", "deployment:d4"): "work_pool:p1"},
    )
    e = OrgEnforcer(
        policy, L.org_domain("o"), snap.policy_lines(policy), L.include_lines(policy), list(snap.decision_lines(policy))
    )
    objects = [obj for _, obj in acls] + ["deployment:d4", "deployment:none", "block:open9"]
    subjects = ["user:alice", "user:bob", "user:carol", "user:dave", "user:eve", "service_account:ci", "user:x"]
    rnd = random.Random(1)
    differs = 0
    for name, kind in policy.object_kinds.items():
        for scope, level in kind.governs.items():
            nodes = [L.object_node("w", o, level) for o in objects if o.startswith(f"{name}:")]
            nodes += ["special", "plain", ""]  # enforce_each takes any r.res, as enforce does
            for _ in range(3):  # three orders
                rnd.shuffle(nodes)
                for subject in subjects:
                    expected = [e.enforce(subject, "ws:w", scope, node) for node in nodes]
                    assert e.enforce_each(subject, "ws:w", scope, nodes) == expected, (subject, scope, nodes)
                    differs += len(set(expected)) > 1
    assert differs  # objects of one request decided differently
    each = e.enforce_each
    if matcher == "own":
        # Truth first: "" is allowed to whoever holds the scope; then the pattern, the name, !=.
        assert each("user:dave", "ws:w", "see_blocks", ["", "w/block:open1#view", "special", "w/block:b2#view"]) == [
            True,
            True,
            True,
            False,
        ]
        assert each("user:x", "ws:w", "see_blocks", ["", "special"]) == [False, False]
        return
    # The additions decide: by name (== and !=), by pattern (keyMatch) and by truth.
    assert each("user:carol", "ws:w", "run_deployments", ["special", "w/deployment:d3#run"]) == [True, False]
    assert each("user:dave", "ws:w", "see_blocks", ["w/block:open1#view", "w/block:b2#view"]) == [True, False]
    assert each("user:eve", "ws:w", "manage_blocks", ["w/block:b2#manage", "plain", ""]) == [True, False, False]
    assert each("user:eve", "ws:w", "see_deployments", ["", "plain"]) == [True, False]
    assert each("user:x", "ws:w", "see_blocks", ["w/block:open1#view", "special"]) == [False, False]
