"""The test oracle: SPEC §1's access rules in plain Python, written from the SPEC.

It reads only the YAML of ``policies/`` (the reviewed data, R23) and the organizations'
facts; it imports nothing of ``orgauthz`` and knows nothing of Casbin. One loader
(:data:`WS_SCOPES`, :data:`ORG_PERMISSIONS`, :data:`WS_ROLES`, :data:`ORG_ROLES`) and one
expansion of roles into scopes (:func:`role_scopes`) serve two views of the rules:

- :class:`Reference` decides over the facts of several organizations (objects shaped like
  ``OrgSnapshot``); tests/decisions/test_equivalence.py compares the engine with it.
- :class:`OrgModel` is one organization changed only by the management operations it
  allows; tests/security/test_escalation.py's state machine checks the server against it.

The rules it encodes:

- R2/R2a: an organization Admin holds every workspace scope in every workspace of the
  organization, and every organization permission.
- R17: a workspace's default role applies to every *user* who is a member of the
  organization, never to service accounts.
- R18: a subject's scopes in a workspace are the union of the default role's (users only)
  and those of the role given to it there.
- R20/R22: a role holds its own scopes plus everything the role it inherits holds;
  ``*`` means every scope in the catalog.
- R21: holding a scope grants every scope it includes, transitively.
- R26: an object (``deployment:<id>``, ``work_pool:<id>``, ``block:<id>``) may carry an ACL
  listing actors (users, service accounts, teams) at levels; each level governs some of the
  kind's workspace scopes (``object_acls`` in ``scopes.yaml``) and includes the levels below
  it. With an ACL, a governed scope on the object is allowed to a subject that holds it in
  the workspace and is listed at a covering level (itself or through a team it belongs to),
  or that keeps full access: an organization Owner or Admin, or whoever holds the workspace
  Owner role there (its own grant, a team's grant, or the default role for users who are
  members). A grant entry gives its level on the object without the workspace scope, to
  members and service accounts of the organization only. A scope the kind does not govern,
  and an object without an ACL, are decided by the workspace alone.
- R27: a deployment that names a work pool with an ACL is governed by the pool's ACL, level
  for level, instead of its own.
- Unknown subjects, workspaces and organizations: deny.
- R3, R4, R8, R10, R13, R16: what a management operation must allow and what it removes
  (:class:`OrgModel`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

POLICIES = Path(__file__).resolve().parents[2] / "policies"
OWNER, ADMIN, MEMBER = "Owner", "Admin", "Member"
ADMINS = (OWNER, ADMIN)  # R2: they can do everything in the organization
OWNERS_ONLY = frozenset({"bypass:sso"})  # R24: what an Owner holds beyond an Admin


class RoleLike(Protocol):
    """A role as written: its own scopes and the role it inherits (empty: none)."""

    @property
    def scopes(self) -> Sequence[str]: ...

    @property
    def inherits(self) -> str: ...


@dataclass(frozen=True)
class BuiltinRole:
    """A role of ``roles.yaml``."""

    scopes: tuple[str, ...]
    inherits: str = ""
    excludes: tuple[str, ...] = ()


# -- the policy data, read once ------------------------------------------------------------


@dataclass(frozen=True)
class ObjectKindSpec:
    """A kind of object under ``object_acls`` (R26): its levels, lowest first, the level that
    governs each scope, and the kind whose ACL governs it when it names one (R27)."""

    levels: tuple[str, ...]
    governs: Mapping[str, str]  # scope -> level
    delegates_to: str = ""

    def covers(self, held: str, needed: str) -> bool:
        """A level includes the ones below it."""
        return held in self.levels and self.levels.index(held) >= self.levels.index(needed)


def _load_object_kinds(directory: Path) -> dict[str, ObjectKindSpec]:
    """``object_acls`` of ``scopes.yaml``: levels in the order written, lowest first."""
    section = yaml.safe_load((directory / "scopes.yaml").read_text()).get("object_acls") or {}
    out = {}
    for kind, body in section.items():
        levels = body["levels"]
        governs = {scope: level for level, scopes in levels.items() for scope in scopes or ()}
        out[kind] = ObjectKindSpec(tuple(levels), governs, str(body.get("delegates_to") or ""))
    return out


def _load(
    directory: Path,
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, BuiltinRole], dict[str, BuiltinRole]]:
    """(workspace scopes -> includes, organization permissions -> includes, workspace roles,
    organization roles), from ``scopes.yaml`` and ``roles.yaml``."""
    scopes = yaml.safe_load((directory / "scopes.yaml").read_text())
    roles = yaml.safe_load((directory / "roles.yaml").read_text())

    def catalog(section: str) -> dict[str, list[str]]:
        return {k: list((v or {}).get("includes") or []) for k, v in scopes[section].items()}

    def builtin(section: str) -> dict[str, BuiltinRole]:
        out = {}
        for name, body in roles[section].items():
            body = body or {}
            out[name] = BuiltinRole(
                tuple(body.get("scopes") or ()), str(body.get("inherits") or ""), tuple(body.get("except") or ())
            )
        return out

    return (
        catalog("workspace_scopes"),
        catalog("organization_permissions"),
        builtin("workspace_roles"),
        builtin("organization_roles"),
    )


WS_SCOPES, ORG_PERMISSIONS, WS_ROLES, ORG_ROLES = _load(POLICIES)
CATALOG = {**WS_SCOPES, **ORG_PERMISSIONS}
BUILTIN_ROLES: dict[str, dict[str, BuiltinRole]] = {"workspace": WS_ROLES, "organization": ORG_ROLES}
OBJECT_KINDS = _load_object_kinds(POLICIES)


# -- roles and scopes (R20-R22) -------------------------------------------------------------


def closure(held: Iterable[str]) -> set[str]:
    """R21: the scopes held and every scope they include, transitively (unknown ones dropped)."""
    out: set[str] = set()
    todo = list(held)
    while todo:
        s = todo.pop()
        if s in out or s not in CATALOG:
            continue
        out.add(s)
        todo += CATALOG[s]
    return out


def role_scopes(name: str, custom: Mapping[str, RoleLike], level: str = "workspace") -> set[str]:
    """Every scope the role grants: its own, its ancestors' (R20, R22; ``*`` is the whole
    catalog but its ``except``) and what they include (R21). ``custom`` (the organization's own
    roles) is looked up before the built-in roles of ``level``; an unknown role grants nothing."""
    written: set[str] = set()
    seen: set[str] = set()
    while name and name not in seen:
        seen.add(name)
        role: RoleLike | None = custom[name] if name in custom else BUILTIN_ROLES[level].get(name)
        if role is None:
            break
        if "*" in role.scopes:
            written |= set(CATALOG) - set(getattr(role, "excludes", ()))
        else:
            written |= set(role.scopes)
        name = role.inherits or ""
    return closure(written)


# -- decisions over organizations' facts ------------------------------------------------------


class EntryLike(Protocol):
    """One ACL entry (R26): an actor (``user:``, ``service_account:``, ``team:<id>``) listed at
    a level; a grant entry gives that level even without the workspace scope."""

    @property
    def actor(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def grant(self) -> bool: ...


class OrgFacts(Protocol):
    """What the reference reads of an organization (``orgauthz``'s ``OrgSnapshot`` fits)."""

    @property
    def org_id(self) -> str: ...
    @property
    def workspaces(self) -> Mapping[str, str | None]: ...  # id -> default role
    @property
    def members(self) -> Mapping[str, str]: ...  # user -> organization role
    @property
    def service_accounts(self) -> Mapping[str, str]: ...  # id -> organization role
    @property
    def grants(self) -> Sequence[tuple[str, str, str]]: ...  # (workspace, subject, role); subject may be team:<id>
    @property
    def custom_roles(self) -> Mapping[str, Any]: ...  # id -> role (scopes, inherits)
    @property
    def teams(self) -> Mapping[str, Sequence[str]]: ...  # team id -> member subjects (R25)
    @property
    def acls(self) -> Mapping[tuple[str, str], Sequence[EntryLike]]: ...  # (workspace, "kind:id") -> entries
    @property
    def pools(self) -> Mapping[tuple[str, str], str]: ...  # (ws, "deployment:id") -> "work_pool:id" (R27)


@dataclass(frozen=True)
class Source:
    """Where a held scope comes from: ``("organization", "Admin")``, ``("workspace", "Developer")``,
    ``("default", "Viewer")``."""

    kind: str
    role: str


class Reference:
    """Decides from the organizations' facts and the policy data, nothing else."""

    def __init__(self, orgs: Iterable[OrgFacts]) -> None:
        self.orgs = {o.org_id: o for o in orgs}
        self.workspace_org = {ws: o.org_id for o in self.orgs.values() for ws in o.workspaces}
        self._memo: dict[tuple[str, str, str], frozenset[str]] = {}

    def role_scopes(self, org: OrgFacts, name: str, level: str = "workspace") -> frozenset[str]:
        """Every scope the role of ``level`` grants in ``org`` (:func:`role_scopes`, remembered)."""
        key = (org.org_id, name, level)
        if key not in self._memo:
            self._memo[key] = frozenset(role_scopes(name, org.custom_roles, level))
        return self._memo[key]

    @staticmethod
    def _org_role(org: OrgFacts, subject: str) -> str | None:
        kind, _, ident = subject.partition(":")
        if kind == "user":
            return org.members.get(ident)
        if kind == "service_account":
            return org.service_accounts.get(ident)
        return None

    def sources(self, subject: str, *, workspace: str = "", organization: str = "", scope: str) -> set[Source]:
        """Every way the subject holds ``scope`` at the target; empty means deny."""
        out: set[Source] = set()
        if workspace:
            org_id = self.workspace_org.get(workspace)
            if org_id is None:
                return out
            org = self.orgs[org_id]
            org_role = self._org_role(org, subject)
            if org_role is None:
                return out  # not of this organization: nothing here applies to it
            if org_role in ADMINS and scope in WS_SCOPES:
                out.add(Source("organization", org_role))  # R2a, whatever roles.yaml says
            for ws, sub, role in org.grants:
                if ws != workspace or scope not in self.role_scopes(org, role):
                    continue
                if sub == subject:
                    out.add(Source("workspace", role))
                elif sub.startswith("team:") and subject in org.teams.get(sub.removeprefix("team:"), ()):
                    out.add(Source(f"team {sub.removeprefix('team:')}", role))  # R18: its teams' grants
            default = org.workspaces.get(workspace)
            if default and subject.startswith("user:") and scope in self.role_scopes(org, default):
                out.add(Source("default", default))  # R17: users only
            return out
        found = self.orgs.get(organization)
        if found is None:
            return out
        org_role = self._org_role(found, subject)
        if org_role in ADMINS and scope in ORG_PERMISSIONS:
            if org_role == OWNER or scope not in OWNERS_ONLY:
                out.add(Source("organization", org_role))  # R2, R24: everything (Admins but bypass:sso)
        elif org_role is not None and scope in self.role_scopes(found, org_role, "organization"):
            out.add(Source("organization", org_role))
        return out

    def check(self, subject: str, *, workspace: str = "", organization: str = "", scope: str, obj: str = "") -> bool:
        """``obj``: ``<kind>:<id>`` in the workspace (R26, R27), "" for none."""
        held = bool(self.sources(subject, workspace=workspace, organization=organization, scope=scope))
        if not obj or not workspace or workspace not in self.workspace_org:
            return held
        org = self.orgs[self.workspace_org[workspace]]
        acl = self.governing_acl(org, workspace, obj, scope)
        if acl is None:
            return held  # no ACL, or a scope the kind does not govern: the workspace decides
        kind, entries, needed = acl
        named = [e for e in entries if kind.covers(e.level, needed) and self.names(org, e.actor, subject)]
        if held and (named or self.keeps_objects(org, subject, workspace)):
            return True
        # A grant entry gives the level without the workspace scope, within the organization.
        return self._org_role(org, subject) is not None and any(e.grant for e in named)

    @staticmethod
    def governing_acl(
        org: OrgFacts, workspace: str, obj: str, scope: str
    ) -> tuple[ObjectKindSpec, Sequence[EntryLike], str] | None:
        """The ACL deciding ``scope`` on ``obj``: (its kind, its entries, the level needed), or
        None when the workspace alone decides (R26, R27)."""
        kind = OBJECT_KINDS.get(obj.partition(":")[0])
        if kind is None or scope not in kind.governs:
            return None
        needed = kind.governs[scope]
        pool = org.pools.get((workspace, obj)) if kind.delegates_to else None
        if pool is not None and pool.partition(":")[0] == kind.delegates_to and (workspace, pool) in org.acls:
            return OBJECT_KINDS[kind.delegates_to], org.acls[(workspace, pool)], needed  # R27, level for level
        if (workspace, obj) in org.acls:
            return kind, org.acls[(workspace, obj)], needed
        return None

    @staticmethod
    def names(org: OrgFacts, actor: str, subject: str) -> bool:
        """The entry's actor is the subject, or a team of the organization the subject is in."""
        if actor == subject:
            return True
        return actor.startswith("team:") and subject in org.teams.get(actor.removeprefix("team:"), ())

    def keeps_objects(self, org: OrgFacts, subject: str, workspace: str) -> bool:
        """R2a, R26: organization Owners and Admins, and whoever holds the workspace Owner role
        (its own grant, a team's grant, or the default role for users who are members)."""
        role = self._org_role(org, subject)
        if role is None:
            return False
        if role in ADMINS:
            return True
        for ws, sub, granted in org.grants:
            if ws == workspace and granted == OWNER and self.names(org, sub, subject):
                return True
        return subject.startswith("user:") and org.workspaces.get(workspace) == OWNER

    def scopes(self, subject: str, *, workspace: str = "", organization: str = "", obj: str = "") -> set[str]:
        """The subject's effective scopes (workspace; on ``obj`` when given) or permissions
        (organization)."""
        table = WS_SCOPES if workspace else ORG_PERMISSIONS
        return {
            s for s in table if self.check(subject, workspace=workspace, organization=organization, scope=s, obj=obj)
        }


# -- one organization under management operations ---------------------------------------------


@dataclass
class CustomRole:
    level: str
    inherits: str
    scopes: list[str]


@dataclass
class OrgModel:
    """One organization's facts, changed only by operations the model allowed."""

    members: dict[str, str]  # user -> organization role
    workspaces: dict[str, str]  # workspace -> default role ("" = No Access)
    grants: dict[tuple[str, str], str] = field(default_factory=dict)  # (workspace, subject) -> role
    service_accounts: dict[str, str] = field(default_factory=dict)  # id -> role
    keys: dict[str, str] = field(default_factory=dict)  # service account id -> its one working key
    custom: dict[str, CustomRole] = field(default_factory=dict)
    max_members: int = 10
    max_service_accounts: int = 3

    # -- roles and scopes (R18, R20-R22) ------------------------------------------------

    def role_scopes(self, role: str, level: str = "workspace") -> set[str]:
        return role_scopes(role, self.custom, level)

    def org_role(self, subject: str) -> str | None:
        kind, _, ident = subject.partition(":")
        return self.members.get(ident) if kind == "user" else self.service_accounts.get(ident)

    def scopes(self, subject: str, workspace: str) -> set[str]:
        """R2a, R17, R18: Admin holds all; else grant's scopes plus the default role's (users only)."""
        role = self.org_role(subject)
        if role is None or workspace not in self.workspaces:
            return set()
        if role in ADMINS:
            return set(WS_SCOPES)
        out = set()
        if (workspace, subject) in self.grants:
            out |= self.role_scopes(self.grants[(workspace, subject)])
        default = self.workspaces[workspace]
        if default and subject.startswith("user:"):
            out |= self.role_scopes(default)
        return out & set(WS_SCOPES)

    def permissions(self, subject: str) -> set[str]:
        role = self.org_role(subject)
        if role is None:
            return set()
        if role == OWNER:
            return set(ORG_PERMISSIONS)
        if role == ADMIN:
            return set(ORG_PERMISSIONS) - OWNERS_ONLY
        return self.role_scopes(role, "organization") & set(ORG_PERMISSIONS)

    def is_admin(self, subject: str) -> bool:
        """An organization Owner or Admin (R2: not limited by R28)."""
        return self.org_role(subject) in ADMINS and subject.startswith("user:")

    def is_owner(self, subject: str) -> bool:
        return self.org_role(subject) == OWNER and subject.startswith("user:")

    def holders(self, role: str) -> set[str]:
        return {u for u, r in self.members.items() if r == role}

    def protected(self) -> str:
        """R3: the role whose last holder stays (an organization without an Owner: Admin)."""
        return OWNER if self.holders(OWNER) else ADMIN

    def in_org(self, subject: str) -> bool:
        return self.org_role(subject) is not None

    # -- what an operation must do -------------------------------------------------------

    def within(self, actor: str, workspace: str, roles: Iterable[str]) -> bool:
        """R28: an organization Admin, or every scope of ``roles`` held by the actor there."""
        held = self.scopes(actor, workspace)
        return self.is_admin(actor) or all(self.role_scopes(r) & set(WS_SCOPES) <= held for r in roles if r)

    def may_manage_access(self, actor: str, workspace: str, subject: str, roles: Iterable[str]) -> bool:
        """R16: organization Admins and whoever holds manage_workspace_users in the workspace
        (no organization permission grants it); R28: a non-Admin only roles within its own
        scopes there (``roles``: the role given and the one held before), never its own access."""
        if self.is_admin(actor):
            return True
        if "manage_workspace_users" not in self.scopes(actor, workspace) or subject == actor:
            return False
        return self.within(actor, workspace, roles)

    def may_set_default(self, actor: str, workspace: str, role: str) -> bool:
        """R17 and R28: a role within the setter's own scopes there, unless it is an Admin."""
        may = "administrate:workspace" in self.permissions(actor) or "manage_workspace_users" in self.scopes(
            actor, workspace
        )
        return may and self.within(actor, workspace, [role])

    def may_give_org_role(self, actor: str, role: str) -> bool:
        """No escalation through a service account: an Admin, or a role whose organization
        permissions the actor holds itself."""
        return self.is_admin(actor) or self.role_scopes(role, "organization") & set(
            ORG_PERMISSIONS
        ) <= self.permissions(actor)

    def may_invite(self, actor: str, role: str) -> bool:
        """R8: only Owners and Admins invite Admins; R24: only Owners invite Owners; R10:
        members plus pending within the limit."""
        if "create:invitation" not in self.permissions(actor):
            return False
        if role == OWNER and not self.is_owner(actor):
            return False
        if role == ADMIN and not self.is_admin(actor):
            return False
        return len(self.members) + 1 <= self.max_members

    def may_change_role(self, actor: str, user: str, role: str) -> bool:
        """R8, R24 and R3."""
        if "update:account_membership" not in self.permissions(actor) or user not in self.members:
            return False
        before = self.members[user]
        if OWNER in (role, before) and not self.is_owner(actor):
            return False
        if ADMIN in (role, before) and not self.is_admin(actor):
            return False
        kept = self.protected()
        return not (before == kept and role != kept and len(self.holders(kept)) <= 1)

    def may_remove(self, actor: str, user: str) -> bool:
        """R3, R8; a member may leave."""
        leaving = actor == f"user:{user}"
        if not leaving and "delete:account_membership" not in self.permissions(actor):
            return False
        if leaving and not self.in_org(actor):
            return False
        if user not in self.members:
            return False
        role = self.members[user]
        if role in ADMINS:
            if not leaving and role == OWNER and not self.is_owner(actor):
                return False
            if not leaving and not self.is_admin(actor):
                return False
            if role == self.protected() and len(self.holders(role)) <= 1:
                return False
        return True

    def remove(self, user: str) -> None:
        """R4: the member and all its workspace access go at once."""
        del self.members[user]
        subject = f"user:{user}"
        self.grants = {k: v for k, v in self.grants.items() if k[1] != subject}

    def delete_service_account(self, sa: str) -> None:
        """R13: its keys and access go at once."""
        del self.service_accounts[sa]
        self.keys.pop(sa, None)
        subject = f"service_account:{sa}"
        self.grants = {k: v for k, v in self.grants.items() if k[1] != subject}
