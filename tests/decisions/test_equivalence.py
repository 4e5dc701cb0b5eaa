"""The engine decides exactly like a plain ``casbin.Enforcer`` and like the SPEC reference.

Random organizations (several at once, sharing users), service accounts, custom roles at
both levels (with and without a built-in parent), default roles, grants, teams, and object
ACLs (R26) on deployments, work pools and blocks (empty ones, entries naming teams, grant
entries, entries left naming someone outside the organization) with deployments naming
work pools (R27: with and without an ACL); requests over known and unknown subjects,
workspaces and organizations, at workspace and organization level, and on objects (with an
ACL, without one, unknown, and with scopes the object's kind does not govern). Three
deciders must agree on every request:

- the orgauthz engine (:class:`OrgEnforcer` from snapshot lines, and the full
  :class:`Engine` reading a real SQLite store written by the importer),
- a plain ``casbin.Enforcer`` holding the same model and every line of every organization,
- :class:`tests.support.oracle.Reference`, the rules written from SPEC §1 without Casbin.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet, RoleDef, load_policy
from orgauthz.engine.enforcer import OrgEnforcer, new_enforcer
from orgauthz.engine.engine import Engine
from orgauthz.store.base import Store
from orgauthz.store.db import open_store
from orgauthz.store.importer import import_document
from tests.support.oracle import Reference, Source

POLICY = load_policy()
WS_SCOPES = sorted(POLICY.workspace_scopes)
ORG_PERMS = sorted(POLICY.organization_permissions)
# R24: a custom role never holds what only Owners hold (the importer refuses it).
CUSTOM_ORG_PERMS = [p for p in ORG_PERMS if p not in rules.OWNERS_ONLY]
WS_BUILTIN = sorted(r.name for r in POLICY.builtin_roles(WORKSPACE))
# Service accounts never hold Owner or Admin (R11); custom roles never inherit them (R22).
ORG_INHERITABLE = sorted(r.name for r in POLICY.builtin_roles(ORGANIZATION) if r.name not in ("Owner", "Admin"))

# Ids use the whole id alphabet (letters, digits and ._:@-) so that prefixes such as
# "user:" or "ws:" inside ids cannot confuse the deciders.
USER_POOL = ["u0", "u1", "u.two", "u:3", "ann@x.test", "o0-sa0"]  # "o0-sa0" is also a service account id
UNKNOWN_SUBJECTS = ["user:nobody", "service_account:ghost", "user:o1-sa0x"]
UNKNOWN_WORKSPACE = "ws-that-is-not"
UNKNOWN_ORG = "org-that-is-not"

# Objects (R26) use the id alphabet too; a ":" inside an id must not be read as a kind.
OBJECT_IDS = {"deployment": ["d0", "d:1", "d.2"], "work_pool": ["p0", "p@1"], "block": ["b0", "b-1"]}
OBJECTS = [f"{kind}:{ident}" for kind, ids in OBJECT_IDS.items() for ident in ids]
UNKNOWN_OBJECTS = ["deployment:none", "work_pool:none", "block:none"]
# Asked on an object of each kind: every scope the kind governs, and of these, those it does
# not (no kind governs see_flows; the others belong to other kinds).
OTHER_SCOPES = {"see_flows", "see_deployments", "see_blocks", "write_work_pools"}
OBJECT_SCOPES = {name: sorted(set(kind.governs) | OTHER_SCOPES) for name, kind in POLICY.object_kinds.items()}
# Someone an ACL entry may still name once it left the organization (lines of a snapshot;
# the importer refuses such an entry, so :meth:`World.importable` drops it); entries may
# also name users of other organizations.
OUTSIDER = "user:gone"

Request = tuple[str, str, str, str, str]  # (subject, workspace, organization, scope, object)


@dataclass
class World:
    orgs: list[L.OrgSnapshot]

    @property
    def subjects(self) -> list[str]:
        users = {f"user:{u}" for o in self.orgs for u in o.members}
        sas = {f"service_account:{a}" for o in self.orgs for a in o.service_accounts}
        return sorted(users | sas) + UNKNOWN_SUBJECTS + [OUTSIDER]

    @property
    def workspaces(self) -> list[str]:
        return [*sorted(ws for o in self.orgs for ws in o.workspaces), UNKNOWN_WORKSPACE]

    @property
    def organizations(self) -> list[str]:
        return [o.org_id for o in self.orgs] + [UNKNOWN_ORG]

    def objects(self, workspace: str) -> list[str]:
        """The workspace's objects with an ACL or a work pool, the work pools named, and one
        unknown object (its kind taking turns across workspaces)."""
        named: set[str] = set()
        for o in self.orgs:
            named |= {obj for ws, obj in o.acls if ws == workspace}
            named |= {obj for (ws, dep), pool in o.pools.items() if ws == workspace for obj in (dep, pool)}
        return [*sorted(named), UNKNOWN_OBJECTS[len(workspace) % len(UNKNOWN_OBJECTS)]]

    def requests(self) -> Iterator[Request]:
        """Every ``(subject, workspace, organization, scope, object)`` the world can be asked."""
        for sub in self.subjects:
            for ws in self.workspaces:
                for scope in WS_SCOPES:
                    yield sub, ws, "", scope, ""
                for obj in self.objects(ws):
                    for scope in OBJECT_SCOPES[obj.partition(":")[0]]:
                        yield sub, ws, "", scope, obj
            for org in self.organizations:
                for perm in ORG_PERMS:
                    yield sub, "", org, perm, ""

    def importable(self) -> World:
        """The world without ACL entries naming someone outside the organization (the
        importer refuses them; the store removes them with the member, R4, R26)."""
        orgs = []
        for o in self.orgs:
            inside = {f"user:{u}" for u in o.members} | {f"service_account:{a}" for a in o.service_accounts}
            inside |= {f"team:{t}" for t in o.teams}
            acls = {key: [e for e in entries if e.actor in inside] for key, entries in o.acls.items()}
            orgs.append(dataclasses.replace(o, acls=acls))
        return World(orgs)

    def document(self) -> dict[str, Any]:
        """The world in the ``orgauthz import`` format."""
        orgs = []
        for o in self.orgs:
            custom = [
                {
                    "id": r.name,
                    "name": f"name of {r.name}",
                    "level": r.level,
                    "inherits": r.inherits or None,
                    "scopes": list(r.scopes),
                }
                for r in o.custom_roles.values()
            ]
            access: dict[str, list[dict[str, str]]] = {}
            for ws, sub, role in o.grants:
                access.setdefault(ws, []).append({"subject": sub, "role": role})
            acls: dict[str, list[dict[str, Any]]] = {}
            for (ws, obj), entries in o.acls.items():
                listed = [{"subject": e.actor, "level": e.level, "grant": e.grant} for e in entries]
                acls.setdefault(ws, []).append({"object": obj, "entries": listed})
            pools: dict[str, dict[str, str]] = {}
            for (ws, dep), pool in o.pools.items():
                pools.setdefault(ws, {})[dep.removeprefix("deployment:")] = pool.removeprefix("work_pool:")
            orgs.append(
                {
                    "id": o.org_id,
                    "handle": _handle(o.org_id),
                    "name": f"Org {o.org_id}",
                    "members": [{"user": u, "role": r} for u, r in o.members.items()],
                    "service_accounts": [
                        {"id": a, "name": f"sa {a}", "role": r} for a, r in o.service_accounts.items()
                    ],
                    "custom_roles": custom,
                    "teams": [{"id": t, "name": f"team {t}", "members": members} for t, members in o.teams.items()],
                    "workspaces": [
                        {
                            "id": ws,
                            "handle": _handle(ws),
                            "default_role": d,
                            "access": access.get(ws, []),
                            "acls": acls.get(ws, []),
                            "deployment_pools": pools.get(ws, {}),
                        }
                        for ws, d in o.workspaces.items()
                    ],
                }
            )
        return {"organizations": orgs}


def _handle(ident: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", ident.lower()).strip("-") or "x"


@st.composite
def org_snapshot(draw: st.DrawFn, index: int) -> L.OrgSnapshot:
    org_id = ["o0", "o1.b", "o:2"][index]
    prefix = f"o{index}"
    custom: dict[str, RoleDef] = {}
    for k in range(draw(st.integers(0, 3))):
        level = draw(st.sampled_from([WORKSPACE, ORGANIZATION]))
        catalog = WS_SCOPES if level == WORKSPACE else CUSTOM_ORG_PERMS
        parents = WS_BUILTIN if level == WORKSPACE else ORG_INHERITABLE
        rid = f"{prefix}-custom{k}"
        custom[rid] = RoleDef(
            name=rid,
            level=level,
            description="",
            builtin=False,
            scopes=tuple(draw(st.lists(st.sampled_from(catalog), max_size=4, unique=True))),
            inherits=draw(st.sampled_from(["", *parents])),
        )
    org_roles = ["Owner", "Admin", "Member", *(r for r, d in custom.items() if d.level == ORGANIZATION)]
    sa_roles = [r for r in org_roles if r not in ("Owner", "Admin")]
    ws_roles = [*WS_BUILTIN, *(r for r, d in custom.items() if d.level == WORKSPACE)]

    users = draw(st.lists(st.sampled_from(USER_POOL), max_size=5, unique=True))
    members = {u: draw(st.sampled_from(org_roles)) for u in users}
    sas = {f"{prefix}-sa{k}": draw(st.sampled_from(sa_roles)) for k in range(draw(st.integers(0, 2)))}
    subjects = [f"user:{u}" for u in members] + [f"service_account:{a}" for a in sas]
    # R25: teams of members and service accounts; a team is a grant's subject like any other.
    teams = {
        f"{prefix}-t{k}": draw(st.lists(st.sampled_from(subjects), unique=True)) if subjects else []
        for k in range(draw(st.integers(0, 2)))
    }
    grantees = [*subjects, *(f"team:{t}" for t in teams)]
    outsiders = [OUTSIDER, draw(st.sampled_from([f"user:{u}" for u in USER_POOL]))]
    outsiders = [o for o in outsiders if o not in subjects]
    workspaces: dict[str, str | None] = {}
    grants: list[tuple[str, str, str]] = []
    acls: dict[tuple[str, str], list[L.AclEntry]] = {}
    pools: dict[tuple[str, str], str] = {}
    for k in range(draw(st.integers(0, 3))):
        ws = f"{prefix}-w{k}"
        workspaces[ws] = draw(st.one_of(st.none(), st.sampled_from(ws_roles)))
        for sub in draw(st.lists(st.sampled_from(grantees), unique=True)) if grantees else []:
            grants.append((ws, sub, draw(st.sampled_from(ws_roles))))
        # R26: ACLs, some empty; entries name subjects, teams, now and then someone outside.
        for obj in draw(st.lists(st.sampled_from(OBJECTS), max_size=4, unique=True)):
            kind = POLICY.object_kinds[obj.partition(":")[0]]
            actors = draw(st.lists(st.sampled_from([*grantees, *outsiders]), max_size=3, unique=True))
            acls[(ws, obj)] = [L.AclEntry(a, draw(st.sampled_from(kind.levels)), draw(st.booleans())) for a in actors]
        # R27: deployments naming a work pool (with an ACL or without).
        for dep in draw(st.lists(st.sampled_from(OBJECT_IDS["deployment"]), max_size=2, unique=True)):
            pools[(ws, f"deployment:{dep}")] = f"work_pool:{draw(st.sampled_from(OBJECT_IDS['work_pool']))}"
    return L.OrgSnapshot(
        org_id=org_id,
        revision=1,
        workspaces=workspaces,
        members=members,
        service_accounts=sas,
        grants=grants,
        custom_roles=custom,
        teams=teams,
        acls=acls,
        pools=pools,
    )


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n = draw(st.integers(1, 3))
    return World([draw(org_snapshot(i)) for i in range(n)])


def org_enforcer(policy: PolicySet, snap: L.OrgSnapshot) -> OrgEnforcer:
    return OrgEnforcer(
        policy,
        L.org_domain(snap.org_id),
        snap.policy_lines(policy),
        L.include_lines(policy),
        list(snap.decision_lines(policy)),
    )


class SnapshotDecider:
    """The engine's per-organization enforcers, with the workspace -> organization lookup."""

    def __init__(self, world: World) -> None:
        self.by_org = {o.org_id: org_enforcer(POLICY, o) for o in world.orgs}
        self.ws_org = {ws: o.org_id for o in world.orgs for ws in o.workspaces}

    def check(self, sub: str, ws: str, org: str, scope: str, obj: str = "") -> bool:
        if ws:
            owner = self.ws_org.get(ws)
            res = L.object_need(POLICY, ws, obj, scope)
            return owner is not None and self.by_org[owner].enforce(sub, L.ws_domain(ws), scope, res)
        return org in self.by_org and self.by_org[org].enforce(sub, L.org_domain(org), scope)


def casbin_check(enforcer: Any, world: World, sub: str, ws: str, org: str, scope: str, obj: str = "") -> bool | None:
    """The plain enforcer's answer, or None where it cannot be asked (unknown target)."""
    if ws:
        owner = next((o.org_id for o in world.orgs if ws in o.workspaces), None)
        if owner is None:
            return None
        res = L.object_need(POLICY, ws, obj, scope)
        return bool(enforcer.enforce(sub, L.org_domain(owner), L.ws_domain(ws), scope, res))
    if org not in {o.org_id for o in world.orgs}:
        return None
    return bool(enforcer.enforce(sub, L.org_domain(org), L.org_domain(org), scope, ""))


def reference_check(ref: Reference, sub: str, ws: str, org: str, scope: str, obj: str = "") -> bool:
    return ref.check(sub, workspace=ws, organization=org, scope=scope, obj=obj)


def _draw_on_objects(data: st.DataObject, ref: Reference, requests: list[Request], n: int) -> list[Request]:
    """``n`` requests on objects for the plain enforcer: half on objects an ACL governs, half
    of those by subjects its entries name (someone outside the organization included)."""
    governed: list[Request] = []
    named: list[Request] = []
    for req in requests:
        sub, ws, _, scope, obj = req
        if not obj or ws not in ref.workspace_org:
            continue
        org = ref.orgs[ref.workspace_org[ws]]
        acl = ref.governing_acl(org, ws, obj, scope)
        if acl is not None:
            governed.append(req)
            if any(ref.names(org, e.actor, sub) for e in acl[1]):
                named.append(req)
    out: list[Request] = []
    for pool, k in ((named, n // 2), (governed, n - n // 2)):
        if pool:
            out += data.draw(st.lists(st.sampled_from(pool), min_size=k, max_size=k))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), data=st.data())
def test_org_enforcer_equals_plain_casbin_and_reference(world: World, data: st.DataObject) -> None:
    ref = Reference(world.orgs)
    engine = SnapshotDecider(world)
    requests = list(world.requests())
    # Engine against the reference on every request of the world.
    for req in requests:
        expected = reference_check(ref, *req)
        assert engine.check(*req) == expected, req
    # Plain Casbin is slow (it walks every p line): a drawn sample, biased to known subjects,
    # and requests on objects an ACL governs, by subjects its entries name.
    plain = new_enforcer(POLICY.model_text, L.all_lines(POLICY, world.orgs))
    sample = data.draw(st.lists(st.sampled_from(requests), min_size=20, max_size=20), label="sample")
    sample += _draw_on_objects(data, ref, requests, 10)
    for req in sample:
        answer = casbin_check(plain, world, *req)
        if answer is not None:
            assert answer == engine.check(*req), req


def _reason(source: Source) -> str:
    if source.kind == "organization":
        return (
            f"organization {source.role}" if source.role in ("Owner", "Admin") else f"organization role {source.role}"
        )
    if source.kind == "workspace":
        return f"workspace role {source.role}"
    if source.kind.startswith("team "):
        return f"{source.kind}: workspace role {source.role}"
    return f"default workspace role {source.role}"


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("equivalence") / "template.db"
    db = open_store(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


async def _engine_answers(db: Store, world: World) -> tuple[dict[Request, bool], dict[Request, list[str]]]:
    engine = Engine(POLICY, db)
    await engine.start()
    answers: dict[Request, bool] = {}
    reasons: dict[Request, list[str]] = {}
    for req in world.requests():
        sub, ws, org, scope, obj = req
        target = engine.resolve(workspace=ws, organization=org)
        if target is None or not await engine.ensure_loaded(target.org_id):
            answers[req] = False
            continue
        answers[req] = engine.decide(sub, target, scope, L.object_need(POLICY, ws, obj, scope))
        if answers[req] and not obj:
            reasons[req] = engine.explain(sub, target, scope)
    return answers, reasons


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(world=worlds(), data=st.data())
def test_engine_from_sqlite_store_equals_reference_and_plain_casbin(
    world: World, data: st.DataObject, sqlite_file: Path
) -> None:
    world = world.importable()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        shutil.copy(sqlite_file, path)
        db = open_store(f"sqlite:///{path}")
        try:
            if world.orgs:
                import_document(db, POLICY, world.document())
            answers, reasons = asyncio.run(_engine_answers(db, world))
        finally:
            db.dispose()
    ref = Reference(world.orgs)
    for req, allowed in answers.items():
        sub, ws, org, scope, obj = req
        if obj:
            assert allowed == reference_check(ref, *req), req
            continue
        sources = ref.sources(sub, workspace=ws, organization=org, scope=scope)
        assert allowed == bool(sources), req
        if allowed:
            # Every way the reference grants it is named, nothing else (R2a, R17, R18).
            explained = {r.split(" (included by ")[0] for r in reasons[req]}
            assert explained == {_reason(s) for s in sources}, req
    plain = new_enforcer(POLICY.model_text, L.all_lines(POLICY, world.orgs))
    sample = data.draw(st.lists(st.sampled_from(sorted(answers)), min_size=14, max_size=14), label="sample")
    sample += _draw_on_objects(data, ref, list(answers), 6)
    for req in sample:
        answer = casbin_check(plain, world, *req)
        if answer is not None:
            assert answer == answers[req], req


# -- hand-picked cases the random worlds must not miss --------------------------------


def _world_of_edge_cases() -> World:
    org = L.OrgSnapshot(
        org_id="acme",
        revision=1,
        workspaces={"prod": "Viewer", "lab": "acme-reader", "dark": None, "shared": "Owner"},
        members={
            "owner": "Owner",
            "admin": "Admin",
            "dev": "Member",
            "aud": "acme-auditor",
            "vic": "Member",
            "wso": "Member",
            "teamy": "Member",
            "lead": "Member",
        },
        service_accounts={"bot": "Member", "aud-bot": "acme-auditor"},
        grants=[
            ("prod", "user:dev", "Developer"),
            ("prod", "service_account:bot", "acme-deployer"),
            ("dark", "service_account:bot", "Worker"),
            ("prod", "user:wso", "Owner"),
            ("prod", "team:ops", "Runner"),
            ("prod", "team:leads", "Owner"),
            ("shared", "service_account:bot", "Developer"),
        ],
        custom_roles={
            "acme-deployer": RoleDef("acme-deployer", WORKSPACE, "", ("manage_deployments",), "Runner", False),
            "acme-reader": RoleDef("acme-reader", WORKSPACE, "", ("see_secret_blocks",), "", False),
            "acme-auditor": RoleDef("acme-auditor", ORGANIZATION, "", ("read:audit_event",), "Member", False),
        },
        teams={"ops": ["user:teamy"], "leads": ["user:lead"]},
        acls={
            ("prod", "deployment:nightly"): [L.AclEntry("user:dev", "run")],
            ("prod", "deployment:weekly"): [L.AclEntry("user:dev", "manage")],  # its work pool's governs
            ("prod", "work_pool:prod-pool"): [L.AclEntry("team:ops", "manage")],
            ("prod", "deployment:daily"): [L.AclEntry("service_account:bot", "view")],
            ("prod", "work_pool:empty-pool"): [],
            ("prod", "block:creds"): [L.AclEntry("user:vic", "view", grant=True)],
            ("dark", "deployment:secret"): [
                L.AclEntry("user:aud", "run", grant=True),
                L.AclEntry(OUTSIDER, "manage", grant=True),
                L.AclEntry("team:ops", "view", grant=True),
            ],
            ("shared", "block:k"): [],
        },
        pools={
            ("prod", "deployment:weekly"): "work_pool:prod-pool",
            ("prod", "deployment:daily"): "work_pool:open-pool",  # no ACL: daily's own governs
        },
    )
    return World([org])


EDGE_CASES = [
    # R2a: Admin has every scope in every workspace, even with no grant and no default.
    ("user:admin", "dark", "", "manage_workspace_users", True),
    ("user:admin", "", "acme", "delete:workspace", True),
    # R24: an Owner is an Admin who may also bypass single sign-on; an Admin may not.
    ("user:owner", "dark", "", "manage_workspace_users", True),
    ("user:owner", "", "acme", "bypass:sso", True),
    ("user:admin", "", "acme", "bypass:sso", False),
    ("user:dev", "", "acme", "bypass:sso", False),
    # R17: the default role applies to users, never to service accounts.
    ("user:aud", "prod", "", "see_flows", True),
    ("service_account:aud-bot", "prod", "", "see_flows", False),
    ("service_account:bot", "lab", "", "see_blocks", False),
    ("user:dev", "dark", "", "see_flows", False),
    # R18: union of default role and grant.
    ("user:dev", "prod", "", "manage_flows", True),
    ("user:dev", "prod", "", "manage_workspace_users", False),
    # R21: see_secret_blocks includes see_blocks.
    ("user:dev", "lab", "", "see_blocks", True),
    ("user:dev", "lab", "", "see_flows", False),
    # R22: the custom role inherits Runner (and Viewer through it) and adds its own scopes.
    ("service_account:bot", "prod", "", "see_workspace_users", True),
    ("service_account:bot", "prod", "", "run_deployments", True),
    ("service_account:bot", "prod", "", "manage_deployments", True),
    ("service_account:bot", "prod", "", "manage_flows", False),
    ("service_account:bot", "dark", "", "write_workers", True),
    # Organization permissions through built-in and custom organization roles.
    ("user:dev", "", "acme", "read:workspace", True),
    ("user:dev", "", "acme", "create:invitation", False),
    ("user:aud", "", "acme", "read:audit_event", True),
    ("user:aud", "", "acme", "read:account", True),
    ("service_account:aud-bot", "", "acme", "read:audit_event", True),
    ("service_account:bot", "", "acme", "read:audit_event", False),
    # Unknown subjects and targets.
    ("user:ghost", "prod", "", "see_flows", False),
    ("user:admin", UNKNOWN_WORKSPACE, "", "see_flows", False),
    ("user:admin", "", UNKNOWN_ORG, "read:account", False),
]


@pytest.mark.parametrize(("sub", "ws", "org", "scope", "expected"), EDGE_CASES)
def test_edge_cases_agree_with_the_spec(sub: str, ws: str, org: str, scope: str, expected: bool) -> None:
    world = _world_of_edge_cases()
    assert reference_check(Reference(world.orgs), sub, ws, org, scope) is expected
    assert SnapshotDecider(world).check(sub, ws, org, scope) is expected
    plain = new_enforcer(POLICY.model_text, L.all_lines(POLICY, world.orgs))
    assert casbin_check(plain, world, sub, ws, org, scope) in (expected, None)


OBJECT_EDGE_CASES = [
    # R26: with an ACL, a governed scope needs the workspace scope and a covering listing.
    ("user:dev", "prod", "run_deployments", "deployment:nightly", True),
    ("user:dev", "prod", "see_deployments", "deployment:nightly", True),  # run covers view
    ("user:dev", "prod", "write_deployments", "deployment:nightly", False),  # listed at run only
    ("service_account:bot", "prod", "run_deployments", "deployment:nightly", False),  # not listed
    ("service_account:bot", "prod", "see_flows", "deployment:nightly", True),  # not governed
    ("user:dev", "prod", "run_deployments", "deployment:unknown", True),  # no ACL: the workspace
    ("user:dev", "prod", "see_work_pools", "work_pool:empty-pool", False),  # an empty ACL
    ("user:dev", "prod", "run_deployments", "work_pool:empty-pool", False),  # a work pool's run
    ("user:dev", "prod", "see_flows", "work_pool:empty-pool", True),
    ("user:dev", "prod", "see_blocks", "block:creds", False),
    ("user:vic", "prod", "see_blocks", "block:creds", True),  # a grant entry lists too
    # R2a, R26: organization Owners and Admins and workspace Owners keep full access.
    ("user:owner", "prod", "manage_deployments", "deployment:nightly", True),
    ("user:admin", "prod", "manage_deployments", "deployment:nightly", True),
    ("user:admin", "prod", "manage_work_pools", "work_pool:empty-pool", True),
    ("user:wso", "prod", "manage_deployments", "deployment:nightly", True),  # its own grant
    ("user:lead", "prod", "manage_deployments", "deployment:nightly", True),  # through a team
    ("user:dev", "shared", "manage_blocks", "block:k", True),  # the default role, a member user
    ("service_account:bot", "shared", "manage_blocks", "block:k", False),  # never for a service account
    ("service_account:bot", "shared", "manage_blocks", "block:other", True),
    # R27: a deployment whose work pool has an ACL is governed by the pool's ACL.
    ("user:dev", "prod", "run_deployments", "deployment:weekly", False),  # its own ACL is set aside
    ("user:teamy", "prod", "run_deployments", "deployment:weekly", True),  # the pool's, through a team
    ("user:teamy", "prod", "write_deployments", "deployment:weekly", False),  # Runner lacks it
    ("user:teamy", "prod", "see_work_queues", "work_pool:prod-pool", True),  # queues follow the pool
    ("user:dev", "prod", "see_work_queues", "work_pool:prod-pool", False),
    ("service_account:bot", "prod", "see_deployments", "deployment:daily", True),  # pool without ACL
    ("service_account:bot", "prod", "run_deployments", "deployment:daily", False),
    # R26 beyond Prefect: a grant entry gives its level on the object alone, within the organization.
    ("user:vic", "prod", "see_secret_blocks", "block:creds", True),
    ("user:vic", "prod", "see_secret_blocks", "", False),
    ("user:vic", "prod", "see_secret_blocks", "block:other", False),
    ("user:vic", "prod", "manage_blocks", "block:creds", False),
    ("user:aud", "dark", "run_deployments", "deployment:secret", True),
    ("user:aud", "dark", "see_deployments", "deployment:secret", True),
    ("user:aud", "dark", "write_deployments", "deployment:secret", False),
    ("user:aud", "dark", "see_flows", "deployment:secret", False),  # not governed: the workspace
    ("user:teamy", "dark", "see_deployments", "deployment:secret", True),  # through a team
    ("user:teamy", "dark", "run_deployments", "deployment:secret", False),
    (OUTSIDER, "dark", "see_deployments", "deployment:secret", False),  # not in the organization
]


@pytest.mark.parametrize(("sub", "ws", "scope", "obj", "expected"), OBJECT_EDGE_CASES)
def test_object_edge_cases_agree_with_the_spec(sub: str, ws: str, scope: str, obj: str, expected: bool) -> None:
    world = _world_of_edge_cases()
    assert reference_check(Reference(world.orgs), sub, ws, "", scope, obj) is expected
    assert SnapshotDecider(world).check(sub, ws, "", scope, obj) is expected
    plain = new_enforcer(POLICY.model_text, L.all_lines(POLICY, world.orgs))
    assert casbin_check(plain, world, sub, ws, "", scope, obj) is expected


# -- at scale --------------------------------------------------------------------------


def _large_world(seed: int, grants_wanted: int) -> World:
    """Many organizations, ~100 users each, every user granted in most workspaces."""
    rnd = random.Random(seed)
    ws_roles = WS_BUILTIN
    orgs: list[L.OrgSnapshot] = []
    total = 0
    i = 0
    while total < grants_wanted:
        oid = f"big{i}"
        custom = {
            f"{oid}-r": RoleDef(
                f"{oid}-r", WORKSPACE, "", tuple(rnd.sample(WS_SCOPES, 3)), rnd.choice(["", *WS_BUILTIN]), False
            ),
            f"{oid}-o": RoleDef(f"{oid}-o", ORGANIZATION, "", tuple(rnd.sample(ORG_PERMS, 3)), "Member", False),
        }
        members = {f"{oid}u{k}": rnd.choice(["Member"] * 20 + ["Admin", f"{oid}-o"]) for k in range(100)}
        sas = {f"{oid}sa{k}": rnd.choice(["Member", f"{oid}-o"]) for k in range(5)}
        roles = [*ws_roles, f"{oid}-r"]
        workspaces = {f"{oid}w{k}": rnd.choice([None, None, None, None, rnd.choice(roles)]) for k in range(12)}
        subjects = [f"user:{u}" for u in members] + [f"service_account:{a}" for a in sas]
        grants = [(ws, sub, rnd.choice(roles)) for ws in workspaces for sub in subjects if rnd.random() < 0.85]
        total += len(grants)
        orgs.append(L.OrgSnapshot(oid, 1, workspaces, members, sas, grants, custom))
        i += 1
    return World(orgs)


def _subjects_of(org: L.OrgSnapshot) -> list[str]:
    return [f"user:{u}" for u in org.members] + [f"service_account:{a}" for a in org.service_accounts]


@pytest.mark.slow
def test_engine_equals_plain_casbin_on_100k_grants() -> None:
    world = _large_world(seed=20240601, grants_wanted=100_000)
    assert sum(len(o.grants) for o in world.orgs) >= 100_000
    engine = SnapshotDecider(world)
    plain = new_enforcer(POLICY.model_text, L.all_lines(POLICY, world.orgs))
    ref = Reference(world.orgs)
    rnd = random.Random(7)
    everyone = [sub for o in world.orgs for sub in _subjects_of(o)] + UNKNOWN_SUBJECTS
    # Casbin builds a role manager per domain on first use, scanning every link: the sample
    # stays within a few organizations so that the plain enforcer answers in reasonable time.
    sampled = rnd.sample(world.orgs, 8)
    allowed = 0
    for _ in range(1000):  # plain Casbin walks ~1,000 p lines per request here: ~20 ms each
        org = rnd.choice(sampled)
        # Mostly the organization's own subjects; sometimes anyone (other organizations, unknown).
        sub = rnd.choice(_subjects_of(org)) if rnd.random() < 0.9 else rnd.choice(everyone)
        if rnd.random() < 0.8:
            req = (sub, rnd.choice(sorted(org.workspaces)), "", rnd.choice(WS_SCOPES))
        else:
            req = (sub, "", org.org_id, rnd.choice(ORG_PERMS))
        expected = casbin_check(plain, world, *req)
        assert engine.check(*req) == expected, req
        assert reference_check(ref, *req) == expected, req
        allowed += bool(expected)
    # The sample exercised both answers, not just denials across organizations.
    assert 100 < allowed < 900
