"""Organizations load on demand without holding up the event loop (SPEC §5).

Building the largest organization of ``large`` takes about 0.4 s of Python; in one piece,
every call in flight waited for all of it. The engine adds an organization's lines in parts
and lets the event loop run between them; the result decides exactly as one built at once.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from orgauthz.domain import lines as L
from orgauthz.domain.policy import PolicySet
from orgauthz.engine import engine as engine_module
from orgauthz.engine.enforcer import OrgEnforcer
from orgauthz.engine.engine import Engine
from orgauthz.store import db as db_module
from orgauthz.store import snapshots
from orgauthz.store.db import Database
from tests.conftest import seed

ROLES = ("Viewer", "Runner", "Developer", "Owner")
DOC = {
    "organizations": [
        {
            "id": "acme",
            "handle": "acme",
            "name": "Acme",
            "members": [
                {"user": "alice", "email": "alice@acme.test", "role": "Admin"},
                *({"user": f"u{i}", "email": f"u{i}@acme.test", "role": "Member"} for i in range(12)),
            ],
            "workspaces": [
                {
                    "id": f"w{w}",
                    "handle": f"w{w}",
                    "name": f"W{w}",
                    **({"default_role": "Viewer"} if w == 0 else {}),
                    "access": [{"subject": f"user:u{i}", "role": ROLES[(i + w) % 4]} for i in range(w, 12, 2)],
                }
                for w in range(4)
            ],
        }
    ]
}


async def test_s5_an_organization_is_built_in_parts_with_the_loop_running_between(
    db: Database, policy: PolicySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(db, policy, DOC)
    monkeypatch.setattr(engine_module, "_BUILD_PART", 3)
    monkeypatch.setattr(engine_module, "_BUILD_SLICE_S", 0.0)  # every part is a slice: a sleep after each
    engine = Engine(policy, db, gc_freeze=False)
    await engine.start()
    events: list[str] = []
    add = OrgEnforcer.add

    def recording(self: OrgEnforcer, lines: list[L.Line]) -> None:
        events.append("add")
        add(self, lines)

    monkeypatch.setattr(OrgEnforcer, "add", recording)

    async def ticking() -> None:
        while True:
            events.append("tick")
            await asyncio.sleep(0)

    ticker = asyncio.create_task(ticking())
    try:
        assert await engine.ensure_loaded("acme")
    finally:
        ticker.cancel()
    adds = [i for i, e in enumerate(events) if e == "add"]
    assert len(adds) == 17  # 13 members (2 lines each), 22 grants, 1 default role: 49 lines in parts of 3
    assert all("tick" in events[a + 1 : b] for a, b in itertools.pairwise(adds))

    # Decides exactly as the organization built in one piece (from rows read in parts of 2).
    monkeypatch.setattr(db_module, "_ROWS_PART", 2)
    loaded = snapshots.load_org(db, "acme")
    assert loaded is not None
    snap = loaded[0]
    assert len(snap.grants) == 22
    assert len(snap.members) == 13
    whole = OrgEnforcer(
        policy, L.org_domain("acme"), snap.policy_lines(policy), L.include_lines(policy), list(snap.access_lines())
    )
    subjects = ["user:alice", "user:nobody", *(f"user:u{i}" for i in range(12))]
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
