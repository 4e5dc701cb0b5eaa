"""``orgauthz import FILE``: loads organizations from a YAML document into the store.

Each organization in the file replaces that organization's members, service accounts,
teams, workspaces, grants, default roles, custom roles and object ACLs with the work pools
their deployments name (its API keys, invitations and audit log are kept). One write per
organization, with its own revision; replicas rebuild it. The document is checked in full,
and against the ids and handles other organizations hold in the store, before anything is
written: a bad entry raises InvalidArgument naming its path
(``organizations[0].workspaces[2].access[1].role``).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, select

from orgauthz.domain import bounds, rules
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet
from orgauthz.errors import InvalidArgument
from orgauthz.store import base as store
from orgauthz.store.base import Decide, Decision, Locked, Read, Store, Write, utcnow
from orgauthz.store.db import blocking
from orgauthz.store.models import (
    AclEntry,
    CustomRole,
    DeploymentPool,
    Invitation,
    Membership,
    ObjectAcl,
    Organization,
    ServiceAccount,
    Team,
    TeamMember,
    User,
    Workspace,
    WorkspaceGrant,
)

log = logging.getLogger(__name__)

DEFAULT_LIMITS = {"members": 1000, "service_accounts": 100, "workspaces": 100, "teams": 100}


@dataclass
class ImportResult:
    organizations: int
    revision: int


def _items(parent: dict[str, Any], key: str, at: str) -> list[dict[str, Any]]:
    """``parent[key]`` as a list of mappings (absent: empty), or InvalidArgument naming the path."""
    value = parent.get(key) or []
    if not isinstance(value, list):
        raise InvalidArgument(f"{at}.{key}", "must be a list")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidArgument(f"{at}.{key}[{i}]", "must be a mapping")
    return value


def _unique(seen: dict[str, set[Any]], kind: str, value: Any, field: str) -> None:
    """Ids the store keeps unique must be unique in the document too, so nothing is half-written."""
    if value in seen.setdefault(kind, set()):
        raise InvalidArgument(field, "is used twice in the document")
    seen[kind].add(value)


def _check_limits(org: dict[str, Any], at: str) -> None:
    limits = org.get("limits") or {}
    if not isinstance(limits, dict):
        raise InvalidArgument(f"{at}.limits", "must be a mapping")
    for key, value in limits.items():
        if key not in DEFAULT_LIMITS:
            raise InvalidArgument(f"{at}.limits.{key}", f"must be one of {', '.join(DEFAULT_LIMITS)}")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
            raise InvalidArgument(f"{at}.limits.{key}", "must be a whole number, at least 0")


def _roles(policy: PolicySet, custom: dict[str, str], level: str) -> set[str]:
    return {r.name for r in policy.builtin_roles(level)} | {k for k, v in custom.items() if v == level}


def _check_org(  # one pass over the document
    policy: PolicySet, org: dict[str, Any], at: str, seen: dict[str, set[Any]]
) -> None:
    org["id"] = org_id = bounds.check_id(f"{at}.id", str(org.get("id", "")))
    _unique(seen, "organization", org_id, f"{at}.id")
    org["handle"] = bounds.check_handle(f"{at}.handle", str(org.get("handle", "")))
    _unique(seen, "organization handle", org["handle"], f"{at}.handle")
    org["name"] = bounds.check_name(f"{at}.name", str(org.get("name", "")))
    _check_limits(org, at)
    builtin = policy.builtin_names()
    custom: dict[str, str] = {}
    for j, role in enumerate(_items(org, "custom_roles", at)):
        p = f"{at}.custom_roles[{j}]"
        role["id"] = rid = bounds.check_id(f"{p}.id", str(role.get("id", "")))
        _unique(seen, "custom role", rid, f"{p}.id")
        role["name"] = bounds.check_name(f"{p}.name", str(role.get("name", rid)))
        role["description"] = bounds.check_description(f"{p}.description", str(role.get("description") or ""))
        _unique(seen, "custom role name", (org_id, role["name"]), f"{p}.name")
        rules.check_custom_role_id(f"{p}.id", rid, builtin)
        level = role.get("level", WORKSPACE)
        if level not in (WORKSPACE, ORGANIZATION):
            raise InvalidArgument(f"{p}.level", "must be workspace or organization")
        rules.check_inherits(
            f"{p}.inherits", inherits=role.get("inherits") or "", level=level, builtin=policy.builtin_names(level)
        )
        scopes = role.get("scopes") or []
        if not isinstance(scopes, list):
            raise InvalidArgument(f"{p}.scopes", "must be a list")
        for k, scope in enumerate(scopes):
            scopes[k] = policy.current_id(str(scope))  # a renamed id is accepted for one release (R21)
            if not policy.is_scope(level, scopes[k]):
                raise InvalidArgument(f"{p}.scopes[{k}]", f"unknown {level} scope {scope!r}")
            rules.check_custom_scope(f"{p}.scopes[{k}]", scopes[k])
        custom[rid] = level
    org_roles = _roles(policy, custom, ORGANIZATION)
    ws_roles = _roles(policy, custom, WORKSPACE)
    subjects: set[str] = set()
    for j, m in enumerate(_items(org, "members", at)):
        p = f"{at}.members[{j}]"
        m["user"] = user = bounds.check_id(f"{p}.user", str(m.get("user", "")))
        _unique(seen, "member", (org_id, user), f"{p}.user")
        subjects.add("user:" + user)
        if m.get("email"):
            bounds.check_email(f"{p}.email", str(m["email"]))
        if m.get("role", rules.MEMBER) not in org_roles:
            raise InvalidArgument(f"{p}.role", "must be Owner, Admin, Member or an organization custom role")
    for j, sa in enumerate(_items(org, "service_accounts", at)):
        p = f"{at}.service_accounts[{j}]"
        sa["id"] = sa_id = bounds.check_id(f"{p}.id", str(sa.get("id", "")))
        _unique(seen, "service account", sa_id, f"{p}.id")
        subjects.add("service_account:" + sa_id)
        sa["name"] = name = bounds.check_name(f"{p}.name", str(sa.get("name", sa_id)))
        _unique(seen, "service account name", (org_id, name), f"{p}.name")
        role = sa.get("role", rules.MEMBER)
        rules.check_service_account_role(f"{p}.role", role)
        if role not in org_roles:
            raise InvalidArgument(f"{p}.role", "must be Member or an organization custom role, never Admin (R11)")
    members_of_org = set(subjects)
    for j, team in enumerate(_items(org, "teams", at)):
        p = f"{at}.teams[{j}]"
        team["id"] = team_id = bounds.check_id(f"{p}.id", str(team.get("id", "")))
        _unique(seen, "team", team_id, f"{p}.id")
        team["name"] = name = bounds.check_name(f"{p}.name", str(team.get("name", team_id)))
        _unique(seen, "team name", (org_id, name), f"{p}.name")
        team["description"] = bounds.check_description(f"{p}.description", str(team.get("description") or ""))
        listed = team.get("members") or []
        if not isinstance(listed, list):
            raise InvalidArgument(f"{p}.members", "must be a list")
        bounds.check_count(f"{p}.members", len(listed), 100_000, minimum=0)
        named: set[str] = set()
        for k, member in enumerate(listed):
            kind, ident = bounds.check_subject(f"{p}.members[{k}]", str(member))
            subject = f"{kind}:{ident}"
            if subject in named:
                raise InvalidArgument(f"{p}.members[{k}]", f"{subject} is named twice")
            if subject not in members_of_org:
                raise InvalidArgument(
                    f"{p}.members[{k}]", "must be a member or service account of the organization (R16, R25)"
                )
            named.add(subject)
        team["members"] = sorted(named)
        subjects.add(f"team:{team_id}")
    for j, ws in enumerate(_items(org, "workspaces", at)):
        p = f"{at}.workspaces[{j}]"
        ws["id"] = ws_id = bounds.check_id(f"{p}.id", str(ws.get("id", "")))
        _unique(seen, "workspace", ws_id, f"{p}.id")
        ws["handle"] = handle = bounds.check_handle(f"{p}.handle", str(ws.get("handle", "")))
        _unique(seen, "workspace handle", (org_id, handle), f"{p}.handle")
        ws["name"] = bounds.check_name(f"{p}.name", str(ws.get("name") or ""), required=False) or handle
        ws["description"] = bounds.check_description(f"{p}.description", str(ws.get("description") or ""))
        if ws.get("default_role") and ws["default_role"] not in ws_roles:
            raise InvalidArgument(f"{p}.default_role", "must be a workspace role or empty (No Access)")
        for k, g in enumerate(_items(ws, "access", p)):
            q = f"{p}.access[{k}]"
            kind, ident = bounds.check_grantee_subject(f"{q}.subject", str(g.get("subject", "")))
            g["subject"] = f"{kind}:{ident}"
            _unique(seen, "grant", (ws_id, g["subject"]), f"{q}.subject")
            if g["subject"] not in subjects:
                raise InvalidArgument(
                    f"{q}.subject", "must be a member, service account or team of the organization (R16, R25)"
                )
            if g.get("role") not in ws_roles:
                raise InvalidArgument(f"{q}.role", "must be a workspace role")
        _check_acls(policy, ws, p, subjects)
    limits = {**DEFAULT_LIMITS, **(org.get("limits") or {})}
    for key in DEFAULT_LIMITS:  # R10: the document itself within its limits
        count = len(org.get(key) or [])
        if count > limits[key]:
            raise InvalidArgument(
                f"{at}.{key}", f"{count} {key.replace('_', ' ')} exceed the organization's limit of {limits[key]} (R10)"
            )


def _check_acls(policy: PolicySet, ws: dict[str, Any], at: str, subjects: set[str]) -> None:
    """A workspace's ``acls`` (R26) and ``deployment_pools`` (R27), normalized in place."""
    objects: set[str] = set()
    acls = _items(ws, "acls", at)
    bounds.check_count(f"{at}.acls", len(acls), bounds.ACLS_PER_WORKSPACE_MAX, minimum=0)
    for k, acl in enumerate(acls):
        q = f"{at}.acls[{k}]"
        kind, ident = bounds.check_object(f"{q}.object", str(acl.get("object", "")))
        acl["object"] = obj = f"{kind}:{ident}"
        if obj in objects:
            raise InvalidArgument(f"{q}.object", f"{obj} has two ACLs")
        objects.add(obj)
        levels = policy.object_kinds[kind].levels
        entries = _items(acl, "entries", q)
        bounds.check_count(f"{q}.entries", len(entries), bounds.ACL_ENTRIES_MAX, minimum=0)
        named: set[str] = set()
        for m, e in enumerate(entries):
            r = f"{q}.entries[{m}]"
            sk, si = bounds.check_acl_actor(f"{r}.subject", str(e.get("subject", "")))
            e["subject"] = subject = f"{sk}:{si}"
            if subject in named:
                raise InvalidArgument(f"{r}.subject", f"{subject} is named twice")
            named.add(subject)
            if subject not in subjects:
                raise InvalidArgument(
                    f"{r}.subject", "must be a member, service account or team of the organization (R26)"
                )
            if e.get("level") not in levels:
                raise InvalidArgument(f"{r}.level", f"a {kind} ACL has levels {', '.join(levels)}")
            e["grant"] = bool(e.get("grant", False))
    pools = ws.get("deployment_pools") or {}
    if not isinstance(pools, dict):
        raise InvalidArgument(f"{at}.deployment_pools", "must map deployment ids to work pool ids")
    bounds.check_count(f"{at}.deployment_pools", len(pools), bounds.POOL_LINKS_PER_WORKSPACE_MAX, minimum=0)
    for dep, pool in pools.items():
        bounds.check_id(f"{at}.deployment_pools.{dep}", str(dep))
        bounds.check_id(f"{at}.deployment_pools.{dep}", str(pool))
    ws["deployment_pools"] = {str(d): str(p) for d, p in pools.items()}


def import_document(db: Store, policy: PolicySet, doc: dict[str, Any]) -> ImportResult:
    """Checks the whole document, then writes one organization per commit (the store's
    :meth:`~orgauthz.store.base.Store.commit`, as every write). Synchronous: the commits run
    on an event loop of their own, in a thread, so it may be called from anywhere."""
    doc = copy.deepcopy(doc)  # ids are written back as the validated strings (YAML may give ints)
    orgs = doc.get("organizations")
    if not isinstance(orgs, list) or not orgs:
        raise InvalidArgument("organizations", "must be a non-empty list")
    seen: dict[str, set[Any]] = {}
    for i, org in enumerate(orgs):
        if not isinstance(org, dict):
            raise InvalidArgument(f"organizations[{i}]", "must be a mapping")
        _check_org(policy, org, f"organizations[{i}]", seen)
    _check_store(db, orgs)
    # Stored as written. Without an Owner, R3 keeps the last Admin instead, as for an
    # organization from before the Owner role; nobody can make an Owner but an Owner (R24).
    ownerless = [o["id"] for o in orgs if not any(m.get("role") == rules.OWNER for m in o.get("members") or [])]
    if ownerless:
        log.warning(
            "%d organization(s) name no Owner (%s%s): the last Admin of each is protected instead (R3)",
            len(ownerless),
            ", ".join(ownerless[:5]),
            ", ..." if len(ownerless) > 5 else "",
        )

    async def commits() -> int:
        revision = 0
        for org in orgs:
            revision = (await db.commit(org["id"], "organization.imported", _reads(org), _replacing(org))).result
        return revision

    return ImportResult(organizations=len(orgs), revision=blocking(db, commits))


# What the store keeps unique across organizations, and where the document names it.
_GLOBAL: tuple[tuple[Any, Any, str, str], ...] = (
    (Organization.handle, Organization.id, "", "handle"),
    (Workspace.id, Workspace.org_id, "workspaces", "id"),
    (ServiceAccount.id, ServiceAccount.org_id, "service_accounts", "id"),
    (CustomRole.id, CustomRole.org_id, "custom_roles", "id"),
    (Team.id, Team.org_id, "teams", "id"),
)


def _check_store(db: Store, orgs: list[dict[str, Any]]) -> None:
    """Ids and handles the store keeps unique across organizations must not belong to
    another organization already, unless one imported earlier in the same document gives
    them up: organizations are written one at a time, and a collision found by the store
    would leave the ones before it imported (InvalidArgument names the path instead).
    A concurrent write can still take an id between this check and the import's own."""
    position = {org["id"]: i for i, org in enumerate(orgs)}  # ids are validated strings by now
    _check_seats(db, orgs)
    for column, owner, key, field in _GLOBAL:
        wanted: dict[str, tuple[int, str]] = {}
        for i, org in enumerate(orgs):
            at = f"organizations[{i}]"
            if not key:
                wanted[org[field]] = (i, f"{at}.{field}")
                continue
            for j, item in enumerate(org.get(key) or []):
                wanted[item[field]] = (i, f"{at}.{key}[{j}].{field}")
        names = sorted(wanted)
        with db.read() as session:
            for start in range(0, len(names), 5000):
                chunk = names[start : start + 5000]
                for value, holder in session.execute(select(column, owner).where(column.in_(chunk))):
                    i, path = wanted[value]
                    if holder == orgs[i]["id"]:
                        continue  # the organization keeps its own
                    if position.get(holder, len(orgs)) < i:
                        continue  # imported before it, without it (the document names each once)
                    raise InvalidArgument(path, "is already used by another organization")


# What an organization's import reads under the write lock.
_ORG = select(Organization.id).where(Organization.id == bindparam("org"))
_WORKSPACES = select(Workspace.id).where(Workspace.org_id == bindparam("org"))
# The service accounts an import replaces: their keys go with them (R13, R14).
_SERVICE_ACCOUNTS = select(ServiceAccount.id).where(ServiceAccount.org_id == bindparam("org"))
_PENDING = (
    select(func.count())
    .select_from(Invitation)
    .where(
        Invitation.org_id == bindparam("org"), Invitation.status == "pending", Invitation.expires_at > bindparam("now")
    )
)
# A user row unless one of that id exists (users are shared by organizations).
_NEW_USER = insert(User).from_select(
    ["id", "email", "created_at"],
    select(bindparam("id"), bindparam("email"), bindparam("created_at")).where(
        ~exists().where(User.id == bindparam("id"))
    ),
)


def _reads(org: dict[str, Any]) -> dict[str, Read]:
    return {
        "org": (_ORG, {"org": org["id"]}),
        "workspaces": (_WORKSPACES, {"org": org["id"]}),
        "service_accounts": (_SERVICE_ACCOUNTS, {"org": org["id"]}),
        "pending": (_PENDING, {"org": org["id"], "now": utcnow()}),
    }


def _seats(org: dict[str, Any], pending: int) -> None:
    """R10: an organization's imported members plus the pending invitations it keeps may not
    exceed its member limit (LimitExceeded)."""
    limit = {**DEFAULT_LIMITS, **(org.get("limits") or {})}["members"]
    rules.check_limit(rules.SEATS, used=pending, adding=len(org.get("members") or []), limit=limit)


def _check_seats(db: Store, orgs: list[dict[str, Any]]) -> None:
    """R10 before anything is written (each organization's commit checks it again under the
    write lock, against the invitations pending then)."""
    now = utcnow()
    with db.read() as session:
        pending = dict(
            session.execute(
                select(Invitation.org_id, func.count())
                .where(
                    Invitation.org_id.in_([org["id"] for org in orgs]),
                    Invitation.status == "pending",
                    Invitation.expires_at > now,
                )
                .group_by(Invitation.org_id)
            ).all()
        )
    for org in orgs:
        _seats(org, int(pending.get(org["id"], 0)))


def _replacing(org: dict[str, Any]) -> Decide[int]:
    """The decision of one organization's import: its rows replaced by the document's."""
    org_id = org["id"]

    def decide(at: Locked) -> Decision[int]:
        _seats(org, int(at["pending"][0][0]))
        now = at.now
        limits = {**DEFAULT_LIMITS, **(org.get("limits") or {})}
        values = {
            "handle": org["handle"],
            "name": org["name"],
            "max_members": limits["members"],
            "max_service_accounts": limits["service_accounts"],
            "max_workspaces": limits["workspaces"],
            "max_teams": limits["teams"],
        }
        writes: list[Write] = [
            store.update(Organization, {"id": org_id}, **values)
            if at.one("org") is not None
            else store.insert(Organization, {"id": org_id, "revision": 0, "created_at": now, **values})
        ]
        writes += [store.delete(model, org_id=org_id) for model in (AclEntry, ObjectAcl, DeploymentPool)]
        writes += [store.delete(model, org_id=org_id) for model in (WorkspaceGrant, Membership, ServiceAccount)]
        writes += [store.delete(model, org_id=org_id) for model in (TeamMember, Team, CustomRole, Workspace)]
        members = org.get("members") or []
        users = {m["user"]: m.get("email") for m in members}
        rows: list[tuple[Any, list[dict[str, Any]]]] = [
            (User, [{"id": u, "email": (e or None) and e.lower(), "created_at": now} for u, e in users.items()]),
            (
                CustomRole,
                [
                    {
                        "id": r["id"],
                        "org_id": org_id,
                        "name": r.get("name", r["id"]),
                        "level": r.get("level", WORKSPACE),
                        "inherits": r.get("inherits") or None,
                        "scopes": list(r.get("scopes") or []),
                        "description": r.get("description", ""),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for r in org.get("custom_roles") or []
                ],
            ),
            (
                Membership,
                [
                    {"org_id": org_id, "user_id": m["user"], "org_role": m.get("role", rules.MEMBER), "created_at": now}
                    for m in members
                ],
            ),
            (
                ServiceAccount,
                [
                    {
                        "id": a["id"],
                        "org_id": org_id,
                        "name": a.get("name", a["id"]),
                        "org_role": a.get("role", rules.MEMBER),
                        "created_at": now,
                    }
                    for a in org.get("service_accounts") or []
                ],
            ),
        ]
        teams = org.get("teams") or []
        rows += [
            (
                Team,
                [
                    {
                        "id": t["id"],
                        "org_id": org_id,
                        "name": t["name"],
                        "description": t["description"],
                        "created_at": now,
                    }
                    for t in teams
                ],
            ),
            (
                TeamMember,
                [
                    {"team_id": t["id"], "subject": m, "org_id": org_id, "created_at": now}
                    for t in teams
                    for m in t["members"]
                ],
            ),
        ]
        workspaces = org.get("workspaces") or []
        rows += [
            (
                Workspace,
                [
                    {
                        "id": ws["id"],
                        "org_id": org_id,
                        "handle": ws["handle"],
                        "name": ws.get("name", ws["handle"]),
                        "default_role": ws.get("default_role") or None,
                        "description": ws["description"],
                        "created_at": now,
                    }
                    for ws in workspaces
                ],
            ),
            (
                WorkspaceGrant,
                [
                    {
                        "workspace_id": ws["id"],
                        "subject": g["subject"],
                        "org_id": org_id,
                        "role": g["role"],
                        "created_at": now,
                    }
                    for ws in workspaces
                    for g in ws.get("access") or []
                ],
            ),
            (
                ObjectAcl,
                [
                    {
                        "workspace_id": ws["id"],
                        "object": a["object"],
                        "org_id": org_id,
                        "revision": at.revision,
                        "updated_at": now,
                    }
                    for ws in workspaces
                    for a in ws.get("acls") or []
                ],
            ),
            (
                AclEntry,
                [
                    {
                        "workspace_id": ws["id"],
                        "object": a["object"],
                        "actor": e["subject"],
                        "org_id": org_id,
                        "level": e["level"],
                        "is_grant": e["grant"],
                    }
                    for ws in workspaces
                    for a in ws.get("acls") or []
                    for e in a.get("entries") or []
                ],
            ),
            (
                DeploymentPool,
                [
                    {
                        "workspace_id": ws["id"],
                        "deployment_id": d,
                        "pool_id": p,
                        "org_id": org_id,
                        "revision": at.revision,
                    }
                    for ws in workspaces
                    for d, p in (ws.get("deployment_pools") or {}).items()
                ],
            ),
        ]
        for model, params in rows:
            if params:
                writes.append((_NEW_USER, params) if model is User else store.insert(model, params))
        old_ws = {row[0] for row in at["workspaces"]}
        new_ws = {ws["id"] for ws in workspaces}
        # Every service account is deleted and its keys with it (even one the document keeps
        # gets new rows and no key): replicas forget what they remember of those keys.
        ended = sorted(f"service_account:{row[0]}" for row in at["service_accounts"])
        change = at.change(
            workspaces_added=sorted(new_ws), workspaces_removed=sorted(old_ws - new_ws), reload=True, keys=ended
        )
        return Decision(at.revision, writes=writes, change=change)

    return decide
