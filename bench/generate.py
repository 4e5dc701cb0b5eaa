"""Deterministic benchmark data sets: ``small``, ``large`` (SPEC §5) and scaled variants.

Organization sizes follow a Zipf law (weight of the i-th organization ∝ 1/(i+1)): a few very
large organizations, many small ones. Workspaces, members, service accounts, custom roles and
grants are apportioned by that weight; grants that a small organization cannot hold (it has
too few workspaces x subjects) go to the larger ones, so the totals are met exactly.

Everything is drawn from ``random.Random`` seeded per organization: the same seed and scale
produce the same data set, whatever order organizations are generated or loaded in.

Loading goes through the store's bulk path (:func:`orgauthz.store.importer.import_document`,
one ``organization.imported`` change with ``reload=True`` per organization)::

    python -m bench.generate large --database-url sqlite:///bench/.data/large.db
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orgauthz.domain import rules
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet, load_policy
from orgauthz.store.base import Store
from orgauthz.store.db import open_store
from orgauthz.store.importer import import_document

SEED = 20240601


@dataclass(frozen=True)
class Shape:
    """Totals of a data set. ``large`` is SPEC §5's reference data set."""

    name: str
    orgs: int
    workspaces: int
    users: int
    grants: int
    service_accounts: int
    custom_roles: int
    teams: int = 0  # R25: about 10 members each, a tenth of them service accounts
    default_role_fraction: float = 0.2
    memberships_per_user: float = 1.2  # some users belong to several organizations
    zipf_s: float = 1.0

    @classmethod
    def scaled(cls, name: str, factor: float) -> Shape:
        """``large`` scaled by ``factor`` (0.01: 10k grants, 0.1: 100k grants)."""
        return cls(
            name=name,
            orgs=max(2, round(1000 * factor)),
            workspaces=max(4, round(10_000 * factor)),
            users=max(20, round(100_000 * factor)),
            grants=round(1_000_000 * factor),
            service_accounts=max(2, round(2000 * factor)),
            custom_roles=max(2, round(200 * factor)),
            teams=max(2, round(5000 * factor)),
        )


SHAPES: dict[str, Shape] = {
    "small": Shape.scaled("small", 0.01),
    "medium": Shape.scaled("medium", 0.1),
    "large": Shape.scaled("large", 1.0),
}


def shape_named(name: str) -> Shape:
    """A named shape, or ``grants<N>`` (e.g. ``grants30000``) for a scaled one."""
    if name in SHAPES:
        return SHAPES[name]
    if name.startswith("grants") and name[6:].isdigit():
        return Shape.scaled(name, int(name[6:]) / 1_000_000)
    raise SystemExit(f"unknown data set {name!r}: small, medium, large or grants<N>")


def apportion(total: int, weights: list[float], minimum: int = 0, caps: list[int] | None = None) -> list[int]:
    """Splits ``total`` in proportion to ``weights`` (largest remainder), each at least
    ``minimum`` and at most ``caps[i]``; what a capped share cannot hold goes to the others."""
    n = len(weights)
    out = [minimum] * n
    if caps is not None:
        out = [min(minimum, c) for c in caps]
    left = total - sum(out)
    open_ = [i for i in range(n) if caps is None or out[i] < caps[i]]
    while left > 0 and open_:
        wsum = sum(weights[i] for i in open_)
        raw = {i: left * weights[i] / wsum for i in open_}
        add = {i: math.floor(raw[i]) for i in open_}
        rest = left - sum(add.values())
        for i in sorted(open_, key=lambda i: raw[i] - add[i], reverse=True)[:rest]:
            add[i] += 1
        for i in open_:
            room = caps[i] - out[i] if caps is not None else add[i]
            take = min(add[i], room)
            out[i] += take
            left -= take
        open_ = [i for i in open_ if caps is None or out[i] < caps[i]]
    return out


@dataclass(frozen=True)
class Plan:
    """Per-organization counts, computed once for the whole data set."""

    shape: Shape
    seed: int
    workspaces: list[int]
    members: list[int]
    service_accounts: list[int]
    custom_roles: list[int]
    grants: list[int]
    member_offset: list[int]
    default_roles: frozenset[int]  # global workspace numbers with a default role
    teams: tuple[int, ...] = ()  # per organization

    @property
    def largest_org_grants(self) -> int:
        return max(self.grants)


def plan(shape: Shape, seed: int = SEED) -> Plan:
    n = shape.orgs
    weights = [1.0 / (i + 1) ** shape.zipf_s for i in range(n)]
    workspaces = apportion(shape.workspaces, weights, minimum=1)
    members = apportion(round(shape.users * shape.memberships_per_user), weights, minimum=2)
    members = [min(m, shape.users) for m in members]
    sas = apportion(shape.service_accounts, weights, minimum=1)
    custom = apportion(shape.custom_roles, weights, minimum=0)
    # A workspace holds at most 60% of the organization's subjects as grants.
    caps = [int(0.6 * w * (m + s)) for w, m, s in zip(workspaces, members, sas, strict=True)]
    if sum(caps) < shape.grants:
        raise ValueError(f"{shape.name}: only {sum(caps)} grants fit, {shape.grants} wanted")
    grants = apportion(shape.grants, weights, minimum=0, caps=caps)
    offsets, at = [], 0
    for m in members:
        offsets.append(at % shape.users)
        at += m
    rng = random.Random(f"{seed}:defaults")
    defaults = frozenset(rng.sample(range(shape.workspaces), round(shape.workspaces * shape.default_role_fraction)))
    teams = apportion(shape.teams, weights, minimum=0)
    return Plan(shape, seed, workspaces, members, sas, custom, grants, offsets, defaults, tuple(teams))


_WS_ROLE_MIX = [("Viewer", 30), ("Runner", 20), ("Developer", 30), ("Owner", 10), ("Worker", 5), ("custom", 5)]
_DEFAULT_ROLES = ["Viewer", "Viewer", "Runner", "Developer"]


def organizations(p: Plan, policy: PolicySet) -> Iterator[dict[str, Any]]:
    """Each organization as an ``orgauthz import`` document entry, in order."""
    ws_start = 0
    sa_start = 0
    cr_start = 0
    ws_scopes = sorted(policy.workspace_scopes)
    org_perms = sorted(set(policy.organization_permissions) - rules.OWNERS_ONLY)  # R24: never in a custom role
    for i in range(p.shape.orgs):
        yield _organization(p, i, ws_start, sa_start, cr_start, ws_scopes, org_perms)
        ws_start += p.workspaces[i]
        sa_start += p.service_accounts[i]
        cr_start += p.custom_roles[i]


def _organization(
    p: Plan, i: int, ws_start: int, sa_start: int, cr_start: int, ws_scopes: list[str], org_perms: list[str]
) -> dict[str, Any]:
    rng = random.Random(f"{p.seed}:org:{i}")
    oid = f"o{i:04d}"
    users = p.shape.users
    custom: list[dict[str, Any]] = []
    for k in range(p.custom_roles[i]):
        rid = f"{oid}-cr{cr_start + k:03d}"
        if k % 4 == 3:
            custom.append(
                {
                    "id": rid,
                    "name": f"Org role {k}",
                    "level": ORGANIZATION,
                    "inherits": "Member",
                    "scopes": rng.sample(org_perms, min(4, len(org_perms))),
                }
            )
        else:
            custom.append(
                {
                    "id": rid,
                    "name": f"Workspace role {k}",
                    "level": WORKSPACE,
                    "inherits": rng.choice(["", "Viewer", "Runner", "Developer"]),
                    "scopes": rng.sample(ws_scopes, min(6, len(ws_scopes))),
                }
            )
    ws_custom = [r["id"] for r in custom if r["level"] == WORKSPACE]
    org_custom = [r["id"] for r in custom if r["level"] == ORGANIZATION]

    members = []
    for k in range(p.members[i]):
        u = (p.member_offset[i] + k) % users
        role = "Admin" if k == 0 or rng.random() < 0.03 else "Member"
        if role == "Member" and org_custom and rng.random() < 0.05:
            role = rng.choice(org_custom)
        members.append({"user": f"u{u:06d}", "email": f"u{u:06d}@example.com", "role": role})
    sas = [
        {
            "id": f"sa{sa_start + k:05d}",
            "name": f"worker-{k}",
            "role": rng.choice(org_custom) if org_custom and rng.random() < 0.1 else "Member",
        }
        for k in range(p.service_accounts[i])
    ]
    subjects = [f"user:{m['user']}" for m in members] + [f"service_account:{a['id']}" for a in sas]

    n_ws = p.workspaces[i]
    ws_weights = [rng.paretovariate(1.5) for _ in range(n_ws)]
    cap = math.ceil(0.6 * len(subjects))
    per_ws = apportion(p.grants[i], ws_weights, minimum=0, caps=[cap] * n_ws)
    roles, cum = zip(*_WS_ROLE_MIX, strict=True)
    workspaces = []
    for k in range(n_ws):
        g = ws_start + k
        ws: dict[str, Any] = {"id": f"w{g:05d}", "handle": f"ws-{g}"}
        if g in p.default_roles:
            ws["default_role"] = rng.choice(_DEFAULT_ROLES)
        access = []
        for subject in rng.sample(subjects, per_ws[k]):
            role = rng.choices(roles, cum)[0]
            if role == "custom":
                role = rng.choice(ws_custom) if ws_custom else "Viewer"
            if subject.startswith("service_account:") and rng.random() < 0.7:
                role = "Worker"
            access.append({"subject": subject, "role": role})
        ws["access"] = access
        workspaces.append(ws)
    # R25: teams of about 10 (a tenth service accounts), each given a role in two workspaces.
    user_subjects = [s for s in subjects if s.startswith("user:")]
    sa_subjects = [s for s in subjects if s.startswith("service_account:")]
    teams = []
    for k in range(p.teams[i] if p.teams else 0):
        tid = f"{oid}-t{k:04d}"
        size = max(2, round(rng.expovariate(0.1)))
        n_sa = min(len(sa_subjects), round(size * 0.1))
        team_members = rng.sample(user_subjects, min(len(user_subjects), size - n_sa)) + rng.sample(sa_subjects, n_sa)
        teams.append({"id": tid, "name": f"Team {k}", "members": team_members})
        for ws in rng.sample(workspaces, min(2, len(workspaces))):
            ws["access"].append(
                {"subject": f"team:{tid}", "role": rng.choice(["Viewer", "Runner", "Developer", "Worker"])}
            )
    return {
        "id": oid,
        "handle": f"org-{i}",
        "name": f"Organization {i}",
        "limits": {"members": 1_000_000, "service_accounts": 100_000, "workspaces": 100_000, "teams": 100_000},
        "custom_roles": custom,
        "teams": teams,
        "members": members,
        "service_accounts": sas,
        "workspaces": workspaces,
    }


def load(db: Store, policy: PolicySet, p: Plan, *, progress: bool = True, chunk_grants: int = 50_000) -> dict[str, Any]:
    """Writes the data set into ``db`` (migrated here); returns counts and timings."""
    t0 = time.perf_counter()
    db.migrate()
    batch: list[dict[str, Any]] = []
    in_batch = done_orgs = done_grants = 0
    revision = 0

    def flush() -> None:
        nonlocal batch, in_batch, revision
        if batch:
            revision = import_document(db, policy, {"organizations": batch}).revision
        batch, in_batch = [], 0

    for org in organizations(p, policy):
        n = sum(len(w["access"]) for w in org["workspaces"])
        batch.append(org)
        in_batch += n
        done_orgs += 1
        done_grants += n
        if in_batch >= chunk_grants:
            flush()
            if progress:
                el = time.perf_counter() - t0
                print(
                    f"  loaded {done_orgs}/{p.shape.orgs} organizations, {done_grants:,} grants ({el:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    flush()
    return {
        "orgs": done_orgs,
        "grants": done_grants,
        "revision": revision,
        "load_s": round(time.perf_counter() - t0, 2),
    }


def summary(p: Plan) -> dict[str, Any]:
    s = p.shape
    return {
        "name": s.name,
        "seed": p.seed,
        "organizations": s.orgs,
        "workspaces": sum(p.workspaces),
        "users": s.users,
        "memberships": sum(p.members),
        "grants": sum(p.grants),
        "service_accounts": sum(p.service_accounts),
        "custom_roles": sum(p.custom_roles),
        "teams": sum(p.teams),
        "default_roles": len(p.default_roles),
        "largest_org_grants": max(p.grants),
        "largest_org_members": max(p.members),
        "largest_org_workspaces": max(p.workspaces),
        "median_org_grants": sorted(p.grants)[len(p.grants) // 2],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="small, medium, large or grants<N>")
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--seed", type=int, default=SEED)
    opts = ap.parse_args(argv)
    p = plan(shape_named(opts.dataset), opts.seed)
    print(summary(p), file=sys.stderr)
    db = open_store(opts.database_url)
    try:
        print(load(db, load_policy(), p))
    finally:
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
