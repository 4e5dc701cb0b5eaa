"""Object access control lists: deployments, work pools and blocks (R26, R27).

An ACL is written whole (:func:`set_acl`), with the revision it replaces: a caller that read
an older one gets Conflict (ABORTED) and nothing is written. Its Casbin lines (see
policies/model.conf and :func:`orgauthz.domain.lines.object_lines`) are computed from the
stored facts before and after the write, for the object and every object whose lines depend
on it (the deployments naming a work pool, R27); the change removes and adds the difference
in the same revision, so the next Check reflects it (SPEC §3).

Who may write (R26): organization Owners and Admins and workspace Owners, "the only ones who
may set ACLs (``manage_acls``)": the actor must hold ``manage_acls`` in the workspace **and**
keep full access to its objects whatever their ACLs say (an organization Owner or Admin, or a
holder of the built-in workspace Owner role, directly, through a team or as the default role;
:meth:`~orgauthz.engine.engine.Engine.keeps_objects`). A custom role holding ``manage_acls``
is not enough. So R28 holds trivially: such an actor holds every workspace scope (a grant
entry never gives more than it holds) and no ACL changes its own access.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, select
from sqlalchemy.orm import Session

from orgauthz.domain import bounds, rules
from orgauthz.domain import lines as L
from orgauthz.domain.lines import AclEntry, Line
from orgauthz.domain.policy import ObjectKind, PolicySet
from orgauthz.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from orgauthz.services.access import locate
from orgauthz.services.context import Actor, Management, audit
from orgauthz.services.teams import SAS_IN_ORG, USERS_IN_ORG
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read, Write
from orgauthz.store.models import AclEntry as AclEntryRow
from orgauthz.store.models import DeploymentPool, ObjectAcl, Team, Workspace

_MANAGE = "manage_acls"


@dataclass(frozen=True)
class AclView:
    workspace: str
    object: str
    entries: tuple[AclEntry, ...]
    revision: int
    updated_at: datetime


@dataclass(frozen=True)
class AclRead:
    """What GetAcl answers: the object's own ACL, its work pool, the ACL governing it instead."""

    acl: AclView | None
    work_pool: str  # "work_pool:<id>" or ""
    governed_by: AclView | None


# -- reads under the write lock, built once ----------------------------------------------

_WS = select(Workspace.org_id).where(Workspace.id == bindparam("ws"))
_ACL = select(ObjectAcl.revision, ObjectAcl.updated_at).where(
    ObjectAcl.workspace_id == bindparam("ws"), ObjectAcl.object == bindparam("obj")
)
_ENTRIES = select(AclEntryRow.actor, AclEntryRow.level, AclEntryRow.is_grant).where(
    AclEntryRow.workspace_id == bindparam("ws"), AclEntryRow.object == bindparam("obj")
)
_ACL_COUNT = select(func.count()).select_from(ObjectAcl).where(ObjectAcl.workspace_id == bindparam("ws"))
_POOL_LINK_COUNT = (
    select(func.count()).select_from(DeploymentPool).where(DeploymentPool.workspace_id == bindparam("ws"))
)
# A deployment's work pool, and whether that work pool has an ACL (R27).
_POOL_OF = (
    select(DeploymentPool.pool_id, ObjectAcl.revision)
    .outerjoin(
        ObjectAcl,
        and_(
            ObjectAcl.workspace_id == DeploymentPool.workspace_id,
            ObjectAcl.object == literal("work_pool:") + DeploymentPool.pool_id,
        ),
    )
    .where(DeploymentPool.workspace_id == bindparam("ws"), DeploymentPool.deployment_id == bindparam("dep"))
)
_POOL_HAS_ACL = select(ObjectAcl.revision).where(
    ObjectAcl.workspace_id == bindparam("ws"), ObjectAcl.object == literal("work_pool:") + bindparam("pool")
)
# The deployments naming a work pool, and their own ACLs and entries (their lines depend on
# whether the work pool has an ACL).
_DEPLOYMENTS_OF = select(DeploymentPool.deployment_id).where(
    DeploymentPool.workspace_id == bindparam("ws"), DeploymentPool.pool_id == bindparam("pool")
)
_DELEGATING = literal("deployment:") + DeploymentPool.deployment_id
_DEPLOYMENT_ACLS = select(ObjectAcl.object).where(
    ObjectAcl.workspace_id == bindparam("ws"),
    ObjectAcl.object.in_(select(_DELEGATING).where(_DEPLOYMENTS_OF.whereclause)),  # type: ignore[arg-type]
)
_DEPLOYMENT_ENTRIES = select(AclEntryRow.object, AclEntryRow.actor, AclEntryRow.level, AclEntryRow.is_grant).where(
    AclEntryRow.workspace_id == bindparam("ws"),
    AclEntryRow.object.in_(select(_DELEGATING).where(_DEPLOYMENTS_OF.whereclause)),  # type: ignore[arg-type]
)
_TEAMS_IN_ORG = select(Team.id).where(Team.org_id == bindparam("org"), Team.id.in_(bindparam("teams", expanding=True)))


def check_entries(kind: ObjectKind, raw: Sequence[tuple[str, str, bool]]) -> list[AclEntry]:
    """Up to 1,000 entries, each subject once, each level one the kind has (InvalidArgument
    naming ``entries[i].subject`` or ``entries[i].level``)."""
    bounds.check_count("entries", len(raw), bounds.ACL_ENTRIES_MAX, minimum=0)
    seen: set[str] = set()
    out: list[AclEntry] = []
    for i, (actor, level, grant) in enumerate(raw):
        bounds.check_acl_actor(f"entries[{i}].subject", actor)
        if actor in seen:
            raise InvalidArgument(f"entries[{i}].subject", f"{actor} is named twice")
        seen.add(actor)
        if level not in kind.levels:
            raise InvalidArgument(
                f"entries[{i}].level", f"a {kind.name} ACL has levels {', '.join(kind.levels)}, not {level!r}"
            )
        out.append(AclEntry(actor, level, bool(grant)))
    return out


def _kind(policy: PolicySet, obj: str) -> ObjectKind:
    kind, _ = bounds.check_object("object", obj)
    return policy.object_kinds[kind]


async def _writer(mgmt: Management, actor: Actor, workspace_id: str) -> str:
    """The workspace's organization, when the actor may write its ACLs (see the module docstring)."""
    org_id = (await locate(mgmt, actor, workspace_id)).org_id
    await mgmt.require(actor, org_id, _MANAGE, workspace_id)
    if not rules.is_admin(await mgmt.org_role_of(actor, org_id)):
        target = mgmt.engine.resolve(workspace=workspace_id)
        if target is None or not mgmt.engine.keeps_objects(actor.subject, target):
            raise PermissionDenied(
                "only organization Owners and Admins and workspace Owners set ACLs (R26); "
                f"{actor.subject} holds manage_acls through a custom role"
            )
    return org_id


def _entries_of(rows: Iterable[Any]) -> list[AclEntry]:
    return [AclEntry(str(r.actor), str(r.level), bool(r.is_grant)) for r in rows]


def _difference(before: list[Line], after: list[Line]) -> tuple[list[Line], list[Line]]:
    """(lines to remove, lines to add), in their order."""
    old, new = set(before), set(after)
    return [x for x in before if x not in new], [x for x in after if x not in old]


def _view(ws: str, obj: str, entries: Sequence[AclEntry], revision: int, updated_at: datetime) -> AclView:
    return AclView(ws, obj, tuple(sorted(entries, key=lambda e: e.actor)), revision, store.as_utc(updated_at))


# -- writes -------------------------------------------------------------------------------


async def set_acl(
    mgmt: Management,
    actor: Actor,
    workspace_id: str,
    obj: str,
    raw_entries: Sequence[tuple[str, str, bool]],
    expected_revision: int,
) -> tuple[AclView, int]:
    """Replaces ``obj``'s ACL (see the module docstring). Conflict when ``expected_revision``
    is not its current revision (0: it has none); FailedPrecondition naming
    ``entries[i].subject`` when an entry names no member, service account or team of the
    organization; LimitExceeded past the workspace's ACL bound."""
    policy = mgmt.policy
    kind = _kind(policy, obj)
    entries = check_entries(kind, raw_entries)
    org_id = await _writer(mgmt, actor, workspace_id)
    by_kind: dict[str, list[str]] = {"user": [], "service_account": [], "team": []}
    for e in entries:
        k, _, ident = e.actor.partition(":")
        by_kind[k].append(ident)
    reads = _object_reads(workspace_id, obj, kind) | {
        "count": (_ACL_COUNT, {"ws": workspace_id}),
        "users": (USERS_IN_ORG, {"org": org_id, "users": by_kind["user"]}),
        "sas": (SAS_IN_ORG, {"org": org_id, "sas": by_kind["service_account"]}),
        "teams": (_TEAMS_IN_ORG, {"org": org_id, "teams": by_kind["team"]}),
    }

    def decide(at: Locked) -> Decision[AclView]:
        state = _ObjectState.read(at, workspace_id, obj, kind)
        current = at.one("acl")
        revision = int(current.revision) if current is not None else 0
        if expected_revision != revision:
            raise Conflict(
                f"expected_revision: the ACL of {obj} is at revision {revision}, not {expected_revision}; "
                "read it again and retry"
            )
        known = (
            {f"user:{r.user_id}" for r in at["users"]}
            | {f"service_account:{r.id}" for r in at["sas"]}
            | {f"team:{r.id}" for r in at["teams"]}
        )
        for i, e in enumerate(entries):
            if e.actor not in known:
                raise FailedPrecondition(
                    f"entries[{i}].subject: {e.actor} is not a member, service account or team "
                    "of the organization (R26)"
                )
        if current is None:
            count = at.one("count")
            used = int(count[0]) if count is not None else 0
            rules.check_limit("ACLs in the workspace", used=used, adding=1, limit=bounds.ACLS_PER_WORKSPACE_MAX)
        lines_before = state.lines(policy, org_id)
        state.acls[(workspace_id, obj)] = list(entries)
        remove, add = _difference(lines_before, state.lines(policy, org_id))
        row = {"workspace_id": workspace_id, "object": obj}
        writes: list[Write] = [
            store.insert(ObjectAcl, {**row, "org_id": org_id, "revision": at.revision, "updated_at": at.now})
            if current is None
            else store.update(ObjectAcl, row, revision=at.revision, updated_at=at.now),
            store.delete(AclEntryRow, workspace_id=workspace_id, object=obj),
        ]
        if entries:
            writes.append(
                store.insert(
                    AclEntryRow,
                    [
                        {**row, "actor": e.actor, "org_id": org_id, "level": e.level, "is_grant": e.grant}
                        for e in entries
                    ],
                )
            )
        shown = [{"subject": e.actor, "level": e.level, "grant": e.grant} for e in entries]
        return Decision(
            _view(workspace_id, obj, entries, at.revision, at.now),
            writes=writes,
            audits=[
                audit(
                    actor,
                    "orgauthz.object-acl.created" if current is None else "orgauthz.object-acl.updated",
                    obj,
                    workspace=workspace_id,
                    details={"entries": shown, "previous_revision": revision},
                )
            ],
            change=at.change(remove=remove, add=add),
        )

    return await mgmt.write(org_id, "object-acl.updated", reads, decide)


async def clear_acl(mgmt: Management, actor: Actor, workspace_id: str, obj: str, expected_revision: int) -> int:
    """Removes ``obj``'s ACL: the workspace alone decides again (R26). NotFound when it has
    none; Conflict when ``expected_revision`` (0: any) is not its revision."""
    policy = mgmt.policy
    kind = _kind(policy, obj)
    org_id = await _writer(mgmt, actor, workspace_id)

    def decide(at: Locked) -> Decision[None]:
        state = _ObjectState.read(at, workspace_id, obj, kind)
        current = at.one("acl")
        if current is None:
            raise NotFound(f"{obj} has no ACL in workspace {workspace_id!r}")
        if expected_revision and expected_revision != int(current.revision):
            raise Conflict(
                f"expected_revision: the ACL of {obj} is at revision {current.revision}, not {expected_revision}; "
                "read it again and retry"
            )
        lines_before = state.lines(policy, org_id)
        del state.acls[(workspace_id, obj)]
        remove, add = _difference(lines_before, state.lines(policy, org_id))
        return Decision(
            None,
            writes=[
                store.delete(AclEntryRow, workspace_id=workspace_id, object=obj),
                store.delete(ObjectAcl, workspace_id=workspace_id, object=obj),
            ],
            audits=[
                audit(
                    actor,
                    "orgauthz.object-acl.deleted",
                    obj,
                    workspace=workspace_id,
                    details={"entries": len(state.before_entries), "previous_revision": int(current.revision)},
                )
            ],
            change=at.change(remove=remove, add=add),
        )

    _, revision = await mgmt.write(org_id, "object-acl.deleted", _object_reads(workspace_id, obj, kind), decide)
    return revision


async def set_deployment_pool(mgmt: Management, actor: Actor, workspace_id: str, deployment: str, pool: str) -> int:
    """R27: the work pool ``deployment`` names ("" for none); who may write ACLs may set it
    (see the module docstring). LimitExceeded past the workspace's bound on work pool links."""
    bounds.check_id("deployment", deployment)
    if pool:
        bounds.check_id("work_pool", pool)
    policy = mgmt.policy
    obj = f"deployment:{deployment}"
    kind = policy.object_kinds["deployment"]
    org_id = await _writer(mgmt, actor, workspace_id)
    reads = _object_reads(workspace_id, obj, kind) | {
        "new_pool": (_POOL_HAS_ACL, {"ws": workspace_id, "pool": pool}),
        "links": (_POOL_LINK_COUNT, {"ws": workspace_id}),
    }

    def decide(at: Locked) -> Decision[None]:
        state = _ObjectState.read(at, workspace_id, obj, kind)
        old = state.pools.get((workspace_id, obj), "")
        new = f"work_pool:{pool}" if pool else ""
        if new and not old:
            count = at.one("links")
            used = int(count[0]) if count is not None else 0
            rules.check_limit(
                "work pool links in the workspace", used=used, adding=1, limit=bounds.POOL_LINKS_PER_WORKSPACE_MAX
            )
        lines_before = state.lines(policy, org_id)
        if at.one("new_pool") is not None:
            state.acls.setdefault((workspace_id, new), [])  # its lines are not recomputed: only that it has one
        state.pools.pop((workspace_id, obj), None)
        if new:
            state.pools[(workspace_id, obj)] = new
        remove, add = _difference(lines_before, state.lines(policy, org_id))
        writes: list[Write] = [store.delete(DeploymentPool, workspace_id=workspace_id, deployment_id=deployment)]
        if pool:
            row = {
                "workspace_id": workspace_id,
                "deployment_id": deployment,
                "pool_id": pool,
                "org_id": org_id,
                "revision": at.revision,
            }
            writes.append(store.insert(DeploymentPool, row))
        return Decision(
            None,
            writes=writes,
            audits=[
                audit(
                    actor,
                    "orgauthz.deployment-work-pool.updated",
                    obj,
                    workspace=workspace_id,
                    details={"from": old, "to": new},
                )
            ],
            change=at.change(remove=remove, add=add),
        )

    _, revision = await mgmt.write(org_id, "deployment-work-pool.updated", reads, decide)
    return revision


def _object_reads(ws: str, obj: str, kind: ObjectKind) -> dict[str, Read]:
    """What :class:`_ObjectState` reads: the workspace, the object's ACL and entries, its work
    pool (a deployment) or the deployments naming it (a work pool)."""
    ident = obj.partition(":")[2]
    reads: dict[str, Read] = {
        "ws": (_WS, {"ws": ws}),
        "acl": (_ACL, {"ws": ws, "obj": obj}),
        "entries": (_ENTRIES, {"ws": ws, "obj": obj}),
    }
    if kind.delegates_to:
        reads["pool"] = (_POOL_OF, {"ws": ws, "dep": ident})
    if kind.name == "work_pool":
        reads["deployments"] = (_DEPLOYMENTS_OF, {"ws": ws, "pool": ident})
        reads["deployment_acls"] = (_DEPLOYMENT_ACLS, {"ws": ws, "pool": ident})
        reads["deployment_entries"] = (_DEPLOYMENT_ENTRIES, {"ws": ws, "pool": ident})
    return reads


@dataclass
class _ObjectState:
    """The stored facts that decide an object's lines and those of the deployments naming it
    (a work pool), as :func:`lines.object_lines` takes them."""

    ws: str
    obj: str
    acls: dict[tuple[str, str], list[AclEntry]]
    pools: dict[tuple[str, str], str]
    objects: list[str]  # whose lines depend on this state
    before_entries: list[AclEntry]

    @classmethod
    def read(cls, at: Locked, ws: str, obj: str, kind: ObjectKind) -> _ObjectState:
        if at.one("ws") is None:
            raise NotFound(f"workspace {ws!r} not found")
        acls: dict[tuple[str, str], list[AclEntry]] = {}
        pools: dict[tuple[str, str], str] = {}
        entries = _entries_of(at["entries"])
        if at.one("acl") is not None:
            acls[(ws, obj)] = entries
        objects = [obj]
        if kind.delegates_to:
            found = at.one("pool")
            if found is not None:
                pool = f"work_pool:{found.pool_id}"
                pools[(ws, obj)] = pool
                if found.revision is not None:
                    acls[(ws, pool)] = []  # only whether it has an ACL matters to the deployment's lines
        if kind.name == "work_pool":
            for row in at["deployments"]:
                dep = f"deployment:{row.deployment_id}"
                pools[(ws, dep)] = obj
                objects.append(dep)
            for row in at["deployment_acls"]:
                acls[(ws, str(row.object))] = []
            for row in at["deployment_entries"]:
                acls[(ws, str(row.object))].append(AclEntry(str(row.actor), str(row.level), bool(row.is_grant)))
        return cls(ws, obj, acls, pools, objects, entries)

    def lines(self, policy: PolicySet, org_id: str) -> list[Line]:
        return [
            line for obj in self.objects for line in L.object_lines(policy, org_id, self.ws, obj, self.acls, self.pools)
        ]


# -- reads ---------------------------------------------------------------------------------


async def list_acls(
    mgmt: Management, actor: Actor, workspace_id: str, *, kind: str, page_size: int, after: str
) -> tuple[list[AclView], str]:
    """manage_acls; the workspace's ACLs (of ``kind``, when given), ordered by object."""
    org_id = (await locate(mgmt, actor, workspace_id)).org_id
    await mgmt.require(actor, org_id, _MANAGE, workspace_id)

    def read(s: Session) -> tuple[list[AclView], str]:
        q = select(ObjectAcl.object, ObjectAcl.revision, ObjectAcl.updated_at).where(
            ObjectAcl.workspace_id == workspace_id
        )
        if kind:
            q = q.where(ObjectAcl.object.startswith(f"{kind}:"))
        if after:
            q = q.where(ObjectAcl.object > after)
        rows = s.execute(q.order_by(ObjectAcl.object).limit(page_size + 1)).all()
        token = str(rows[page_size - 1].object) if len(rows) > page_size else ""
        page = rows[:page_size]
        entries: dict[str, list[AclEntry]] = {str(r.object): [] for r in page}
        if page:
            found = s.execute(
                select(AclEntryRow.object, AclEntryRow.actor, AclEntryRow.level, AclEntryRow.is_grant).where(
                    AclEntryRow.workspace_id == workspace_id, AclEntryRow.object.in_(list(entries))
                )
            )
            for r in found:
                entries[str(r.object)].append(AclEntry(str(r.actor), str(r.level), bool(r.is_grant)))
        views = [
            _view(workspace_id, str(r.object), entries[str(r.object)], int(r.revision), r.updated_at) for r in page
        ]
        return views, token

    return await mgmt.read(read)


async def get_acl(mgmt: Management, actor: Actor, workspace_id: str, obj: str) -> AclRead:
    """The kind's view scope on the object (Check with the object), or manage_acls."""
    policy = mgmt.policy
    kind = _kind(policy, obj)
    org_id = (await locate(mgmt, actor, workspace_id)).org_id
    view_scope = next(s for s, lv in kind.governs.items() if lv == kind.levels[0])
    target = mgmt.engine.resolve(workspace=workspace_id)
    may_view = target is not None and mgmt.engine.decide(
        actor.subject, target, view_scope, L.object_need(policy, workspace_id, obj, view_scope)
    )
    if not may_view:
        await mgmt.require(actor, org_id, _MANAGE, workspace_id)

    def one(s: Session, o: str) -> AclView | None:
        row = s.execute(_ACL, {"ws": workspace_id, "obj": o}).first()
        if row is None:
            return None
        entries = _entries_of(s.execute(_ENTRIES, {"ws": workspace_id, "obj": o}))
        return _view(workspace_id, o, entries, int(row.revision), row.updated_at)

    def read(s: Session) -> AclRead:
        if s.execute(_WS, {"ws": workspace_id}).first() is None:
            raise NotFound(f"workspace {workspace_id!r} not found")
        acl = one(s, obj)
        pool, governed = "", None
        if kind.delegates_to:
            found = s.execute(_POOL_OF, {"ws": workspace_id, "dep": obj.partition(":")[2]}).first()
            if found is not None:
                pool = f"work_pool:{found.pool_id}"
                governed = one(s, pool)
        return AclRead(acl, pool, governed)

    return await mgmt.read(read)
