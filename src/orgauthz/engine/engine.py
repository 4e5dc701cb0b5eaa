"""The decision engine: organizations loaded on demand, each into an :class:`OrgEnforcer`.

Kept in memory for every organization: which workspaces it owns and its revision (the
last committed change touching it). Loaded on demand and evicted when cold: the
organization's :class:`OrgEnforcer` (its lines, evaluated with Casbin's model). Changes
from the store's feed are applied in revision order to whatever is loaded, so no
organization is reloaded per change.

All methods run on the event loop thread except the store reads, which run in threads.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.changes import ChangeSet
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet, RoleDef
from orgauthz.engine.enforcer import OrgEnforcer
from orgauthz.store import snapshots
from orgauthz.store.base import Store

log = logging.getLogger(__name__)
# Building an organization: lines added between looks at the clock, the work done before
# the event loop is let run, and for how long (see Engine._build).
_BUILD_PART = 200
_BUILD_SLICE_S = 0.002
_BUILD_PAUSE_S = 0.001
_LOAD_ATTEMPTS = 3  # loads of one organization one call waits for (see Engine.ensure_loaded)

# One reason for "not in the organization" and "no such workspace or organization": an
# explanation must not tell a caller which ids exist (SPEC §2).
NO_ACCESS = "not a member of the organization that owns it, or it does not exist"

# PlanObjects answers (R26): every object of the kind, every one but some, or only some.
ALL, ALL_EXCEPT, ONLY = "ALL", "ALL_EXCEPT", "ONLY"


@dataclass(frozen=True)
class Plan:
    """Which objects of a kind a subject may use a scope on: ``kind`` ALL (``ids`` empty),
    ALL_EXCEPT ``ids`` or ONLY ``ids`` (sorted)."""

    kind: str
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """A resolved decision target: the organization and the Casbin domain."""

    org_id: str
    domain: str  # "ws:<id>" or "org:<id>"
    level: str  # WORKSPACE or ORGANIZATION


@dataclass(frozen=True)
class GrantPath:
    """One way a subject holds a scope (see :meth:`Engine.grant_paths`)."""

    how: str  # "organization" (Admin), "organization role", "workspace role", "default workspace role"
    role: str  # the role as held: a built-in name or a custom role id
    source: str  # the role in its inheritance chain whose own scopes grant it (== role: held directly)
    included_by: tuple[str, ...]  # held scopes that include the asked one; empty: the scope itself is held
    custom: bool = False

    def reason(self) -> str:
        via = f" (included by {', '.join(self.included_by)})" if self.included_by else ""
        return f"{self.how} {self.role}{via}"


class _Org:
    __slots__ = ("enforcer", "last_used", "synced_to")

    def __init__(self, enforcer: OrgEnforcer, synced_to: int) -> None:
        self.enforcer = enforcer
        self.synced_to = synced_to  # every change <= this revision is applied
        self.last_used = time.monotonic()


class Engine:
    """Answers decisions from Casbin for every organization in the store."""

    def __init__(self, policy: PolicySet, db: Store, *, max_loaded_orgs: int = 2000, gc_freeze: bool = False) -> None:
        self.policy = policy
        self.db = db
        self.max_loaded_orgs = max_loaded_orgs
        self.gc_freeze = gc_freeze
        self.workspace_org: dict[str, str] = {}
        self.org_workspaces: dict[str, set[str]] = {}
        self.org_revision: dict[str, int] = {}
        self.applied = 0  # the global revision every change up to which is applied
        self._orgs: OrderedDict[str, _Org] = OrderedDict()
        self._loading: dict[str, asyncio.Task[None]] = {}
        self._include_lines = L.include_lines(policy)
        self._ws_targets: dict[str, Target] = {}
        self._custom_roles: dict[str, dict[str, RoleDef]] = {}  # org -> its custom roles, for explain
        self.loads = 0
        self.evictions = 0
        self.reloads = 0  # full index re-reads (far behind, gap in the feed)
        # Told every change as it is applied (None: a re-read of the index, anything may
        # have changed): what is remembered beside the engine, such as resolved API keys.
        self._watchers: list[Callable[[int, ChangeSet | None], None]] = []

    def watch(self, watcher: Callable[[int, ChangeSet | None], None]) -> None:
        """Calls ``watcher(revision, change)`` after each change is applied, and
        ``watcher(revision, None)`` after a re-read of the index."""
        self._watchers.append(watcher)

    def announce(self, revision: int, change: ChangeSet | None) -> None:
        """Tells the watchers of a change (:meth:`apply` does; also a change committed here
        that cannot be applied yet, so nothing it revoked is answered meanwhile)."""
        for watcher in self._watchers:
            watcher(revision, change)

    # -- start-up and the feed -------------------------------------------------------

    async def start(self) -> None:
        index = await asyncio.to_thread(snapshots.load_index, self.db)
        self.workspace_org = index.workspace_org
        self.org_workspaces = {}
        for ws, org in index.workspace_org.items():
            self.org_workspaces.setdefault(org, set()).add(ws)
        self.org_revision = index.org_revision
        self.applied = index.revision
        self._settle()

    async def reload(self) -> None:
        """Re-reads the index and drops every loaded organization; they load again on demand.

        For a replica too far behind to replay changes one by one. Loads in flight catch up
        to the new position themselves (see :meth:`_load`).
        """
        await self.start()
        self._orgs.clear()  # no await since start() set the index: never a mixed state
        self.reloads += 1
        self.announce(self.applied, None)

    def apply(self, revision: int, change: ChangeSet) -> None:
        """Applies one committed change. Changes must arrive in revision order, once."""
        if revision <= self.applied:
            return
        org = change.org_id
        if not org:  # a write of no organization (a user's API keys, R29): no lines
            self.applied = revision
            self.announce(revision, change)
            return
        for ws in change.workspaces_added:
            self.workspace_org[ws] = org
            self.org_workspaces.setdefault(org, set()).add(ws)
        self.org_revision[org] = max(self.org_revision.get(org, 0), revision)
        state = self._orgs.get(org)
        if state is not None and revision > state.synced_to:
            self._apply_to(state, org, change)
            state.synced_to = revision
        for ws in change.workspaces_removed:
            self._ws_targets.pop(ws, None)
            self.workspace_org.pop(ws, None)
            self.org_workspaces.get(org, set()).discard(ws)
        if change.kind == "organization.deleted":
            self.org_revision.pop(org, None)
            self._orgs.pop(org, None)
            for ws in self.org_workspaces.pop(org, set()):
                self.workspace_org.pop(ws, None)
        self.applied = revision
        self.announce(revision, change)

    def _apply_to(self, state: _Org, org: str, change: ChangeSet) -> None:
        if change.reload:
            # Custom roles changed: rebuilt on the next request from a fresh snapshot.
            self._orgs.pop(org, None)
            return
        state.enforcer.remove(change.remove)
        state.enforcer.add(change.add)

    # -- organizations on demand ----------------------------------------------------

    def loaded(self, org_id: str) -> bool:
        return org_id in self._orgs

    async def ensure_loaded(self, org_id: str) -> bool:
        """Loads the organization if needed; False when it does not exist.

        The load runs as a task of its own that every caller waits for: a caller that is
        cancelled (its deadline passed) neither cancels the load nor fails the others. A
        caller resumes a turn or two after the load installed the organization; should a
        change have dropped it meanwhile (custom roles changed, a re-read of the index, an
        eviction), it is loaded again rather than reported missing."""
        for _ in range(_LOAD_ATTEMPTS):
            if org_id in self._orgs:
                return True
            if org_id not in self.org_revision:
                return False
            await asyncio.shield(self._loading.get(org_id) or self._start_load(org_id))
        return org_id in self._orgs

    def load_soon(self, org_id: str) -> None:
        """Starts loading the organization in the background, unless it is loaded, loading
        or unknown; nobody waits for it."""
        if org_id not in self._orgs and org_id not in self._loading and org_id in self.org_revision:
            self._start_load(org_id)

    def _start_load(self, org_id: str) -> asyncio.Task[None]:
        task = self._loading[org_id] = asyncio.create_task(self._load(org_id), name=f"orgauthz-load-{org_id}")
        task.add_done_callback(partial(self._loaded, org_id))
        return task

    async def close(self) -> None:
        """Cancels the loads in flight (the server is stopping; its database goes next)."""
        loads = list(self._loading.values())
        for task in loads:
            task.cancel()
        await asyncio.gather(*loads, return_exceptions=True)

    def _loaded(self, org_id: str, task: asyncio.Task[None]) -> None:
        if self._loading.get(org_id) is task:
            del self._loading[org_id]
        if not task.cancelled() and task.exception() is not None:
            log.debug("loading organization %s failed: %r", org_id, task.exception())  # its waiters raise it

    async def _load(self, org_id: str) -> None:
        loaded = await asyncio.to_thread(snapshots.load_org, self.db, org_id)
        if loaded is None:
            return None
        snap, org_rev = loaded
        state = _Org(await self._build(snap), snap.revision)
        # Catch up with changes the feed applied while the snapshot was read: it skipped
        # this organization because it was not loaded yet.
        while self.applied > state.synced_to:
            upto = self.applied
            for entry in await asyncio.to_thread(
                snapshots.changes_since, self.db, state.synced_to, upto=upto, org_id=org_id
            ):
                if entry.change.reload:
                    return await self._load(org_id)
                self._apply_to(state, org_id, entry.change)
            state.synced_to = max(state.synced_to, upto)
        self.org_revision[org_id] = max(self.org_revision.get(org_id, 0), org_rev)
        self._custom_roles[org_id] = dict(snap.custom_roles)
        self._orgs[org_id] = state
        self.loads += 1
        while len(self._orgs) > self.max_loaded_orgs:
            self._orgs.popitem(last=False)
            self.evictions += 1
        self._settle()
        return None

    def _settle(self) -> None:
        """Takes what was just loaded out of the cyclic garbage collector's passes.

        A loaded organization is a few dicts with up to hundreds of thousands of entries;
        every full collection walks them (50-100 ms with the ``large`` data set loaded, a
        stall for every call in flight). Frozen objects are still freed by reference
        counting when an organization is evicted or reloaded (its structures hold no
        cycles); young garbage is collected first so that no cycle is frozen with them.
        """
        if self.gc_freeze:
            gc.collect(1)
            gc.freeze()

    async def _build(self, snap: L.OrgSnapshot) -> OrgEnforcer:
        """The organization's enforcer, built on the event loop in slices of about 2 ms with
        a 1 ms sleep after each. Building the largest organization of ``large`` (168,855
        grants) is about 0.4 s of Python: in one piece every call in flight waited for all of
        it, in a worker thread too (the loop then waits for the interpreter at each turn).
        Yielding without sleeping is not enough either: gRPC's poller thread needs the
        interpreter to hand calls over, and gets it only when the loop thread sleeps. A Check
        load of 1,000/s during such a build: p99 3.4 ms with 2 ms slices and 1 ms sleeps,
        114-362 ms with ``sleep(0)`` between slices of 0.2-5 ms (bench/NOTES.md item 10).
        An organization built within one slice never sleeps. Nothing else sees the enforcer
        until :meth:`_load` installs it."""
        enforcer = OrgEnforcer(
            self.policy, L.org_domain(snap.org_id), snap.policy_lines(self.policy), self._include_lines, []
        )
        lines = snap.decision_lines(self.policy)
        until = time.perf_counter() + _BUILD_SLICE_S
        while part := list(itertools.islice(lines, _BUILD_PART)):
            enforcer.add(part)
            if time.perf_counter() >= until:
                await asyncio.sleep(_BUILD_PAUSE_S)
                until = time.perf_counter() + _BUILD_SLICE_S
        return enforcer

    def _state(self, org_id: str) -> _Org:
        state = self._orgs[org_id]
        self._orgs.move_to_end(org_id)
        return state

    # -- decisions -------------------------------------------------------------------

    def resolve(self, workspace: str = "", organization: str = "") -> Target | None:
        """The target's organization and domain; None when it names nothing (a deny)."""
        if workspace:
            org = self.workspace_org.get(workspace)
            if not org:
                return None
            # Targets are immutable: one per workspace is reused while it stays in its
            # organization (a hot path: every Check and every BatchCheck item resolves).
            target = self._ws_targets.get(workspace)
            if target is None or target.org_id != org:
                target = self._ws_targets[workspace] = Target(org, L.ws_domain(workspace), WORKSPACE)
            return target
        if organization in self.org_revision:
            return Target(organization, L.org_domain(organization), ORGANIZATION)
        return None

    def org_of(self, workspace: str) -> str | None:
        return self.workspace_org.get(workspace)

    def revision_of(self, org_id: str) -> int | None:
        return self.org_revision.get(org_id)

    def direct_roles(self, org_id: str, subject: str, domain: str) -> tuple[str, ...] | None:
        """The roles ``subject`` holds directly in ``domain`` (``org:`` or ``ws:``) of a
        loaded organization, as of :attr:`applied`; None when it is not loaded."""
        state = self._orgs.get(org_id)
        return None if state is None else tuple(state.enforcer.roles_of(subject, domain))

    def knows(self, org_id: str, subject: str) -> bool | None:
        """Whether a line of the loaded organization names ``subject`` (False: every decision
        about it there is a deny, found in one set lookup); None when it is not loaded."""
        state = self._orgs.get(org_id)
        return None if state is None else state.enforcer.knows(subject)

    def custom_role(self, org_id: str, role_id: str) -> RoleDef | None:
        """The organization's custom role ``role_id`` as last loaded, if any."""
        return self._custom_roles.get(org_id, {}).get(role_id)

    def decide(self, subject: str, target: Target, scope: str, res: str = "") -> bool:
        """Requires :meth:`ensure_loaded` first. ``res``: the object node (R26), "" for none."""
        return self._state(target.org_id).enforcer.enforce(subject, target.domain, scope, res)

    def scopes(self, subject: str, target: Target, obj: str = "") -> list[str]:
        """Every scope of the target's level the subject holds (on ``obj``, when given), sorted."""
        enforcer = self._state(target.org_id).enforcer
        catalog = self.policy.workspace_scopes if target.level == WORKSPACE else self.policy.organization_permissions
        if not enforcer.knows(subject):
            return []
        ws = target.domain.removeprefix("ws:")
        need = L.object_need
        return sorted(
            s
            for s in catalog
            if enforcer.enforce(subject, target.domain, s, need(self.policy, ws, obj, s) if obj else "")
        )

    def plan(self, subject: str, target: Target, workspace: str, kind: str, scope: str) -> Plan:
        """PlanObjects (R26): the objects of ``kind`` in the workspace on which the subject may
        use ``scope``, as the difference from the workspace's own answer. Only objects with
        lines (an ACL, or a work pool with one: R27) can differ from it; each of them is
        decided by the same matcher as Check (:meth:`OrgEnforcer.enforce_each`), so the plan
        agrees with Check on every object (tests/management/acls/test_acls.py,
        tests/decisions/test_plan.py)."""
        enforcer = self._state(target.org_id).enforcer
        in_workspace = enforcer.enforce(subject, target.domain, scope)
        level = self.policy.object_kinds[kind].governs.get(scope)
        if level is None:  # the kind does not govern the scope: the workspace decides
            return Plan(ALL) if in_workspace else Plan(ONLY)
        ids = sorted(enforcer.governed(workspace, kind))
        nodes = [L.object_node(workspace, f"{kind}:{ident}", level) for ident in ids]
        decided = enforcer.enforce_each(subject, target.domain, scope, nodes)
        differ = tuple(ident for ident, allowed in zip(ids, decided, strict=True) if allowed != in_workspace)
        if in_workspace:
            return Plan(ALL_EXCEPT, differ) if differ else Plan(ALL)
        return Plan(ONLY, differ)

    def grant_paths(self, subject: str, target: Target, scope: str) -> list[GrantPath]:
        """Every path that grants the scope (empty: denied). Requires :meth:`ensure_loaded`."""
        enforcer = self._state(target.org_id).enforcer
        org_dom = L.org_domain(target.org_id)
        granted_by = self.policy.included_by.get(scope, frozenset({scope}))
        custom = self._custom_roles.get(target.org_id, {})
        paths: list[GrantPath] = []

        def why(role: str, how: str, level: str) -> None:
            held = enforcer.role_scopes(role) & granted_by
            if not held:
                return
            name = role.partition(":")[2]
            via = () if scope in held else tuple(sorted(held))
            source = self._source(level, name, custom, scope, granted_by)
            paths.append(GrantPath(how, name, source, via, name in custom))

        for role in enforcer.roles_of(subject, org_dom):
            if role != L.MEMBER:
                everything = role in (L.org_role_name(rules.OWNER), L.org_role_name(rules.ADMIN))
                why(role, "organization" if everything else "organization role", ORGANIZATION)
        if target.level == WORKSPACE:
            for role in enforcer.roles_of(subject, target.domain):
                if role.startswith("team:"):  # R18, R25: the team's own roles in the workspace
                    for team_role in enforcer.roles_of(role, target.domain):
                        why(team_role, f"team {role.removeprefix('team:')}: workspace role", WORKSPACE)
                else:
                    why(role, "workspace role", WORKSPACE)
            default = enforcer.default_role(target.domain)
            if default and subject.startswith("user:") and L.MEMBER in enforcer.roles_of(subject, org_dom):
                why(default, "default workspace role", WORKSPACE)
        return paths

    def _source(self, level: str, name: str, custom: dict[str, RoleDef], scope: str, granted_by: frozenset[str]) -> str:
        """The role along ``name``'s inheritance chain whose own scopes grant the scope:
        the first listing the scope itself, else the first listing a scope that includes it."""
        chain: list[RoleDef] = []
        role: RoleDef | None = custom.get(name) or self.policy.role(level, name)
        while role is not None and role not in chain:
            chain.append(role)
            role = (custom.get(role.inherits) or self.policy.role(level, role.inherits)) if role.inherits else None
        for wanted in (frozenset({scope}), granted_by):
            for r in chain:
                if set(self.policy.expand_wildcard(r.scopes)) & wanted:
                    return r.name
        return name

    def explain(self, subject: str, target: Target, scope: str, res: str = "") -> list[str]:
        """Every path that grants the scope, or for a denial what the subject holds and what is missing.

        Granting paths read "organization Admin", "workspace role Developer",
        "default workspace role Viewer", with "(included by manage_flows)" when a held scope
        includes the asked one. A denial names what is held there and the nearest missing
        piece: the least built-in role that grants the scope. With an object (``res``), what
        its ACL decided follows (R26, R27); when the workspace alone would deny, the ACL's grant
        entries are all that can allow, and the grant that did comes first.
        """
        reasons = self._explain_workspace(subject, target, scope)
        if not res or reasons == [NO_ACCESS]:
            return reasons
        if self.grant_paths(subject, target, scope):
            return reasons + self._explain_object(subject, target, res, workspace_allows=True)
        acl = self._explain_object(subject, target, res, workspace_allows=False)
        return acl + reasons if self.decide(subject, target, scope, res) else reasons + acl

    def keeps_objects(self, subject: str, target: Target) -> bool:
        """Whether the subject keeps full access to the workspace's objects whatever their ACLs
        say (R2a, R26): the matcher's clause after ``g4(r.res, r.sub, r.org)``, read from the
        same links. Requires :meth:`ensure_loaded`."""
        enforcer = self._state(target.org_id).enforcer
        org_dom = L.org_domain(target.org_id)
        g = enforcer.links("g")
        return (
            g.has_link(subject, L.org_role_name(rules.OWNER), org_dom)
            or g.has_link(subject, L.org_role_name(rules.ADMIN), org_dom)
            or g.has_link(subject, L.role_name(rules.OWNER), target.domain)
            or (
                subject.startswith("user:")
                and L.MEMBER in enforcer.roles_of(subject, org_dom)
                and enforcer.default_role(target.domain) == L.role_name(rules.OWNER)
            )
        )

    def _explain_object(self, subject: str, target: Target, res: str, *, workspace_allows: bool) -> list[str]:
        """Which ACL decided, and through which entry (or that none names the subject). When the
        workspace alone denies, only grant entries matter (R26)."""
        enforcer = self._state(target.org_id).enforcer
        org_dom = L.org_domain(target.org_id)
        listing, grants = enforcer.links("g4"), enforcer.links("g5")
        ws, _, rest = res.partition("/")
        obj, _, level = rest.rpartition("#")
        if not listing.has_link(res, L.ACL, org_dom):
            return [f"{obj} has no ACL governing this scope: the workspace decides (R26)"]
        governing = obj
        for hop in listing.roles(res, org_dom):  # R27: a deployment's node leads to its work pool's
            if hop.startswith(f"{ws}/") and not hop.startswith(f"{ws}/{obj}#"):
                governing = hop.partition("/")[2].rpartition("#")[0]
        whose = f"{obj}'s ACL" if governing == obj else f"{governing}'s ACL, which governs {obj} (R27)"
        kind = self.policy.object_kinds[governing.partition(":")[0]]
        found: list[str] = []
        kinds = ((listing, "listed"), (grants, "granted")) if workspace_allows else ((grants, "granted"),)
        for links, what in kinds:
            for lv in kind.covering(level):
                for actor in links.roles(L.object_node(ws, governing, lv), org_dom):
                    if actor == subject:
                        found.append(f"{whose}: {what} at {lv}")
                    elif actor.startswith("team:") and links.has_link(actor, subject, org_dom):
                        found.append(f"{whose}: {what} at {lv} through {actor}")
        if not workspace_allows:
            return found or [f"{whose}: no grant entry names {subject} at {level} or above (R26)"]
        if self.keeps_objects(subject, target):
            found.append(f"{whose}: organization Owners and Admins and workspace Owners keep their access (R2a, R26)")
        if not found:
            found.append(f"{whose}: {subject} is not listed at {level} or above, itself or through a team (R26)")
        return found

    def _explain_workspace(self, subject: str, target: Target, scope: str) -> list[str]:
        paths = self.grant_paths(subject, target, scope)
        if paths:
            return [p.reason() for p in paths]
        enforcer = self._state(target.org_id).enforcer
        org_dom = L.org_domain(target.org_id)
        is_member = L.MEMBER in enforcer.roles_of(subject, org_dom)
        org_roles = [r.partition(":")[2] for r in enforcer.roles_of(subject, org_dom) if r != L.MEMBER]
        nearest = self._least_builtin(target.level, scope)
        if target.level == WORKSPACE:
            if not enforcer.knows(subject) or not is_member:
                return [NO_ACCESS]
            held = [
                f"team {r.removeprefix('team:')}: workspace role {t.removeprefix('role:')}"
                if r.startswith("team:")
                else f"workspace role {r.removeprefix('role:')}"
                for r in enforcer.roles_of(subject, target.domain)
                for t in (enforcer.roles_of(r, target.domain) if r.startswith("team:") else [r])
            ]
            default = enforcer.default_role(target.domain)
            missing = [f"no role held here grants {scope}"]
            if default and not subject.startswith("user:"):
                missing.append("the default workspace role never applies to service accounts (R17)")
            elif default:
                held.append(f"default workspace role {default.removeprefix('role:')}")
            missing.append(
                "held here: "
                + (", ".join(held) if held else "nothing (no workspace role; the default role is No Access)")
            )
            if nearest:
                missing.append(f"nearest: workspace role {nearest} grants {scope}")
            return missing
        if not enforcer.knows(subject) or not org_roles:
            return [NO_ACCESS]
        out = [f"organization role {', '.join(org_roles)} does not grant {scope}"]
        if nearest:
            out.append(f"nearest: organization role {nearest} grants {scope}")
        return out

    def _least_builtin(self, level: str, scope: str) -> str:
        """The built-in role of ``level`` with the fewest scopes that grants ``scope`` ("" if none)."""
        granting = []
        for role in self.policy.builtin_roles(level):
            effective = self.policy.effective_scopes(self.policy.held_scopes(role))
            if scope in effective:
                granting.append((len(effective), role.name))
        return min(granting)[1] if granting else ""
