"""Deterministic benchmark data sets: ``small``, ``large`` (SPEC §5) and scaled variants.

Organization sizes follow a Zipf law (weight of the i-th organization ∝ 1/(i+1)): a few very
large organizations, many small ones. Workspaces, members, service accounts, custom roles,
grants, teams and object ACLs are apportioned by that weight; grants that a small
organization cannot hold (it has too few workspaces x subjects) go to the larger ones, so the
totals are met exactly.

Object ACLs (R26, R27) are spread over an organization's workspaces with a skew of their own,
at most ``acls_per_workspace_max`` in one workspace (PlanObjects decides each governed object
of a workspace). A workspace's ACLs are split 6:1:3 over deployments, work pools and blocks.
Half of its deployments with an ACL name a work pool: half of those (when the workspace has
work pools with an ACL) one with an ACL, which then governs them instead of their own (R27),
the rest one without. A quarter as many deployments without an ACL of their own name a work
pool with one, and are governed through it alone. A tenth of the ACLs hold grant entries.
Entries name users, service accounts and teams of the organization, mostly ones with a role in
the workspace; ACL generation has a random generator of its own per organization, so the rest
of the data set is what it was without ACLs.

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
    acls: int = 0  # R26: object ACLs (deployments, work pools, blocks)
    acl_grant_fraction: float = 0.1  # ACLs holding grant entries
    acls_per_workspace_max: int = 300
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
            acls=round(100_000 * factor),
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
    acls: tuple[int, ...] = ()  # per organization
    grant_acls: tuple[int, ...] = ()  # per organization: ACLs holding grant entries
    workspace_acls: tuple[tuple[int, ...], ...] = ()  # per organization, per workspace

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
    cap = shape.acls_per_workspace_max
    acl_caps = [w * cap for w in workspaces]
    if sum(acl_caps) < shape.acls:
        raise ValueError(f"{shape.name}: only {sum(acl_caps)} ACLs fit, {shape.acls} wanted")
    acls = apportion(shape.acls, weights, minimum=0, caps=acl_caps)
    grant_acls = apportion(round(shape.acls * shape.acl_grant_fraction), weights, minimum=0, caps=acls)
    workspace_acls = tuple(
        tuple(
            apportion(n, _skew(random.Random(f"{seed}:acls:{i}"), workspaces[i]), minimum=0, caps=[cap] * workspaces[i])
        )
        for i, n in enumerate(acls)
    )
    return Plan(
        shape,
        seed,
        workspaces,
        members,
        sas,
        custom,
        grants,
        offsets,
        defaults,
        tuple(teams),
        tuple(acls),
        tuple(grant_acls),
        workspace_acls,
    )


def _skew(rng: random.Random, n: int) -> list[float]:
    """Weights of ``n`` workspaces: a few take much of an organization's share."""
    return [rng.paretovariate(1.5) for _ in range(n)]


@dataclass(frozen=True)
class WorkspaceObjects:
    """How a workspace's ACLs split over kinds, and its deployments' work pools (R27)."""

    deployments: int  # with an ACL of their own
    work_pools: int  # with an ACL
    blocks: int
    plain_pools: int  # work pools without an ACL
    linked: int  # deployments with an ACL that name a work pool
    linked_to_acl: int  # ... of those, naming one with an ACL (it governs them, R27)
    delegated_only: int  # deployments without an ACL naming a work pool with one

    @property
    def pool_links(self) -> int:
        return self.linked + self.delegated_only

    @property
    def delegating(self) -> int:
        return self.linked_to_acl + self.delegated_only


def workspace_objects(n: int) -> WorkspaceObjects:
    """The split of a workspace's ``n`` ACLs: 6:1:3 deployments, work pools, blocks."""
    deployments, pools, blocks = apportion(n, [0.6, 0.1, 0.3]) if n else (0, 0, 0)
    linked = deployments // 2
    linked_to_acl = linked // 2 if pools else 0
    delegated_only = deployments // 4 if pools else 0
    plain_pools = 1 + deployments // 20 if deployments else 0
    return WorkspaceObjects(deployments, pools, blocks, plain_pools, linked, linked_to_acl, delegated_only)


_WS_ROLE_MIX = [("Viewer", 30), ("Runner", 20), ("Developer", 30), ("Owner", 10), ("Worker", 5), ("custom", 5)]
_DEFAULT_ROLES = ["Viewer", "Viewer", "Runner", "Developer"]


def organizations(p: Plan, policy: PolicySet) -> Iterator[dict[str, Any]]:
    """Each organization as an ``orgauthz import`` document entry, in order."""
    ws_start = 0
    sa_start = 0
    cr_start = 0
    ws_scopes = sorted(policy.workspace_scopes)
    org_perms = sorted(set(policy.organization_permissions) - rules.OWNERS_ONLY)  # R24: never in a custom role
    levels = {name: kind.levels for name, kind in policy.object_kinds.items()}
    for i in range(p.shape.orgs):
        org = _organization(p, i, ws_start, sa_start, cr_start, ws_scopes, org_perms)
        if p.workspace_acls and p.acls[i]:
            _object_acls(p, i, org, levels)
        yield org
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


# Levels an entry names, by how many levels its kind has (R26: view < run < manage, blocks view < manage).
_LEVEL_WEIGHTS = {3: [30, 45, 25], 2: [60, 40]}


def _object_acls(p: Plan, i: int, org: dict[str, Any], levels: dict[str, tuple[str, ...]]) -> None:
    """Adds the organization's object ACLs and its deployments' work pools to each workspace
    (``acls`` and ``deployment_pools``, the importer's format). Drawn from a generator of
    their own, so the rest of the organization is what it was without them."""
    rng = random.Random(f"{p.seed}:acl-entries:{i}")
    users = [f"user:{m['user']}" for m in org["members"]]
    sas = [f"service_account:{a['id']}" for a in org["service_accounts"]]
    teams = [f"team:{t['id']}" for t in org["teams"]]
    counts = p.workspace_acls[i]
    with_grants = set(rng.sample(range(sum(counts)), p.grant_acls[i]))
    at = 0  # the organization's ACLs numbered in order

    def actor(local: list[str]) -> str:
        x = rng.random()
        if x < 0.6 and local:
            return rng.choice(local)  # someone with a role in the workspace (itself or a team)
        if x < 0.8 or not (sas or teams):
            return rng.choice(users)
        if (x < 0.9 and sas) or not teams:
            return rng.choice(sas)
        return rng.choice(teams)

    def acl(obj: str, local: list[str], grants: bool) -> dict[str, Any]:
        kind_levels = levels[obj.partition(":")[0]]
        n = 0 if rng.random() < 0.03 else 1 + min(19, int(rng.expovariate(1 / 3)))
        n = max(n, 1) if grants else n
        named: dict[str, dict[str, Any]] = {}
        for _ in range(3 * n):
            if len(named) == n:
                break
            who = actor(local)
            if who not in named:
                level = rng.choices(kind_levels, _LEVEL_WEIGHTS[len(kind_levels)])[0]
                named[who] = {"subject": who, "level": level}
        entries = list(named.values())
        if grants:  # one or two entries give their level whatever the workspace role (R26)
            for e in rng.sample(entries, min(len(entries), 1 if rng.random() < 0.7 else 2)):
                e["grant"] = True
        return {"object": obj, "entries": entries}

    for ws, n in zip(org["workspaces"], counts, strict=True):
        if not n:
            continue
        split = workspace_objects(n)
        local = [a["subject"] for a in ws["access"]]
        objects = (
            [f"deployment:d{k:04d}" for k in range(split.deployments)]
            + [f"work_pool:p{k:03d}" for k in range(split.work_pools)]
            + [f"block:b{k:04d}" for k in range(split.blocks)]
        )
        ws["acls"] = [acl(obj, local, at + k in with_grants) for k, obj in enumerate(objects)]
        at += n
        # R27: pools p000.. have an ACL, the plain ones follow them.
        acl_pools = [f"p{k:03d}" for k in range(split.work_pools)]
        plain = [f"p{k:03d}" for k in range(split.work_pools, split.work_pools + split.plain_pools)]
        pools: dict[str, str] = {}
        for k in range(split.linked):
            pools[f"d{k:04d}"] = rng.choice(acl_pools if k < split.linked_to_acl else plain)
        for k in range(split.deployments, split.deployments + split.delegated_only):
            pools[f"d{k:04d}"] = rng.choice(acl_pools)
        if pools:
            ws["deployment_pools"] = pools


def load(db: Store, policy: PolicySet, p: Plan, *, progress: bool = True, chunk_grants: int = 50_000) -> dict[str, Any]:
    """Writes the data set into ``db`` (migrated here); returns counts and timings. Organizations
    go to the importer in documents of about ``chunk_grants`` rows (grants, ACLs, their entries
    and work pool links)."""
    t0 = time.perf_counter()
    db.migrate()
    batch: list[dict[str, Any]] = []
    in_batch = done_orgs = done_grants = 0
    acls = entries = grant_entries = pool_links = 0
    revision = 0

    def flush() -> None:
        nonlocal batch, in_batch, revision
        if batch:
            revision = import_document(db, policy, {"organizations": batch}).revision
        batch, in_batch = [], 0

    for org in organizations(p, policy):
        n = sum(len(w["access"]) for w in org["workspaces"])
        rows = n
        for ws in org["workspaces"]:
            for a in ws.get("acls", ()):
                acls += 1
                entries += len(a["entries"])
                grant_entries += sum(1 for e in a["entries"] if e.get("grant"))
                rows += 1 + len(a["entries"])
            pool_links += len(ws.get("deployment_pools", ()))
            rows += len(ws.get("deployment_pools", ()))
        batch.append(org)
        in_batch += rows
        done_orgs += 1
        done_grants += n
        if in_batch >= chunk_grants:
            flush()
            if progress:
                el = time.perf_counter() - t0
                print(
                    f"  loaded {done_orgs}/{p.shape.orgs} organizations, {done_grants:,} grants, "
                    f"{acls:,} ACLs ({el:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    flush()
    return {
        "orgs": done_orgs,
        "grants": done_grants,
        "acls": acls,
        "acl_entries": entries,
        "acl_grant_entries": grant_entries,
        "deployment_pools": pool_links,
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
        **acl_summary(p),
    }


def acl_summary(p: Plan) -> dict[str, Any]:
    """The object ACLs' counts (R26, R27), known from the plan alone."""
    splits = [workspace_objects(n) for org in p.workspace_acls for n in org]
    return {
        "acls": sum(p.acls),
        "acls_with_grants": sum(p.grant_acls),
        "acls_by_kind": {
            "deployment": sum(s.deployments for s in splits),
            "work_pool": sum(s.work_pools for s in splits),
            "block": sum(s.blocks for s in splits),
        },
        "deployment_pools": sum(s.pool_links for s in splits),
        "delegating_deployments": sum(s.delegating for s in splits),
        "workspaces_with_acls": sum(1 for org in p.workspace_acls for n in org if n),
        "largest_workspace_acls": max((n for org in p.workspace_acls for n in org), default=0),
        "largest_org_acls": max(p.acls, default=0),
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
