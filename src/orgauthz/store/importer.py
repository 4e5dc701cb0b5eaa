"""``orgauthz import FILE``: loads organizations from a YAML document into the store.

Each organization in the file replaces that organization's members, service accounts,
workspaces, grants, default roles and custom roles (its API keys, invitations and audit
log are kept). One write per organization, with its own revision; replicas rebuild it.
The document is checked in full before anything is written: a bad entry raises
InvalidArgument naming its path (``organizations[0].workspaces[2].access[1].role``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from orgauthz.domain import bounds
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet
from orgauthz.errors import InvalidArgument
from orgauthz.store.db import Database, utcnow
from orgauthz.store.models import (
    CustomRole,
    Membership,
    Organization,
    ServiceAccount,
    User,
    Workspace,
    WorkspaceGrant,
)

DEFAULT_LIMITS = {"members": 1000, "service_accounts": 100, "workspaces": 100}


@dataclass
class ImportResult:
    organizations: int
    revision: int


def _roles(policy: PolicySet, custom: dict[str, str], level: str) -> set[str]:
    return {r.name for r in policy.builtin_roles(level)} | {k for k, v in custom.items() if v == level}


def _check_org(policy: PolicySet, org: dict[str, Any], at: str) -> None:  # noqa: C901  # one pass over the document
    bounds.check_id(f"{at}.id", str(org.get("id", "")))
    bounds.check_handle(f"{at}.handle", str(org.get("handle", "")))
    bounds.check_name(f"{at}.name", str(org.get("name", "")))
    custom: dict[str, str] = {}
    for j, role in enumerate(org.get("custom_roles") or []):
        p = f"{at}.custom_roles[{j}]"
        rid = bounds.check_id(f"{p}.id", str(role.get("id", "")))
        if rid in policy.roles:
            raise InvalidArgument(f"{p}.id", "must not be a built-in role name")
        level = role.get("level", WORKSPACE)
        if level not in (WORKSPACE, ORGANIZATION):
            raise InvalidArgument(f"{p}.level", "must be workspace or organization")
        inherits = role.get("inherits") or ""
        if inherits and (inherits not in policy.roles or policy.roles[inherits].level != level
                         or inherits == "Admin"):
            raise InvalidArgument(f"{p}.inherits", f"must be a built-in {level} role other than Admin")
        for k, scope in enumerate(role.get("scopes") or []):
            if not policy.is_scope(level, str(scope)):
                raise InvalidArgument(f"{p}.scopes[{k}]", f"unknown {level} scope {scope!r}")
        custom[rid] = level
    org_roles = _roles(policy, custom, ORGANIZATION)
    ws_roles = _roles(policy, custom, WORKSPACE)
    subjects: set[str] = set()
    for j, m in enumerate(org.get("members") or []):
        p = f"{at}.members[{j}]"
        subjects.add("user:" + bounds.check_id(f"{p}.user", str(m.get("user", ""))))
        if m.get("email"):
            bounds.check_email(f"{p}.email", str(m["email"]))
        if m.get("role", "Member") not in org_roles:
            raise InvalidArgument(f"{p}.role", "must be Admin, Member or an organization custom role")
    for j, sa in enumerate(org.get("service_accounts") or []):
        p = f"{at}.service_accounts[{j}]"
        subjects.add("service_account:" + bounds.check_id(f"{p}.id", str(sa.get("id", ""))))
        bounds.check_name(f"{p}.name", str(sa.get("name", sa.get("id", ""))))
        role = sa.get("role", "Member")
        if role == "Admin" or role not in org_roles:
            raise InvalidArgument(f"{p}.role", "must be Member or an organization custom role, never Admin (R11)")
    for j, ws in enumerate(org.get("workspaces") or []):
        p = f"{at}.workspaces[{j}]"
        bounds.check_id(f"{p}.id", str(ws.get("id", "")))
        bounds.check_handle(f"{p}.handle", str(ws.get("handle", "")))
        if ws.get("default_role") and ws["default_role"] not in ws_roles:
            raise InvalidArgument(f"{p}.default_role", "must be a workspace role or empty (No Access)")
        for k, g in enumerate(ws.get("access") or []):
            q = f"{p}.access[{k}]"
            bounds.check_subject(f"{q}.subject", str(g.get("subject", "")))
            if g["subject"] not in subjects:
                raise InvalidArgument(f"{q}.subject", "must be a member or service account of the organization (R16)")
            if g.get("role") not in ws_roles:
                raise InvalidArgument(f"{q}.role", "must be a workspace role")


def import_document(db: Database, policy: PolicySet, doc: dict[str, Any]) -> ImportResult:
    orgs = doc.get("organizations")
    if not isinstance(orgs, list) or not orgs:
        raise InvalidArgument("organizations", "must be a non-empty list")
    for i, org in enumerate(orgs):
        if not isinstance(org, dict):
            raise InvalidArgument(f"organizations[{i}]", "must be a mapping")
        _check_org(policy, org, f"organizations[{i}]")
    revision = 0
    for org in orgs:
        revision = _replace_org(db, org)
    return ImportResult(organizations=len(orgs), revision=revision)


def _replace_org(db: Database, org: dict[str, Any]) -> int:
    org_id = org["id"]
    with db.write(org_id, "organization.imported") as w:
        s, now = w.session, w.now
        limits = {**DEFAULT_LIMITS, **(org.get("limits") or {})}
        existing = s.get(Organization, org_id)
        old_ws = set(s.scalars(select(Workspace.id).where(Workspace.org_id == org_id))) if existing else set()
        if existing is None:
            s.add(Organization(id=org_id, handle=org["handle"], name=org["name"], revision=0, created_at=now,
                               max_members=limits["members"], max_service_accounts=limits["service_accounts"],
                               max_workspaces=limits["workspaces"]))
        else:
            existing.handle, existing.name = org["handle"], org["name"]
            existing.max_members = limits["members"]
            existing.max_service_accounts = limits["service_accounts"]
            existing.max_workspaces = limits["workspaces"]
        s.flush()
        for model in (WorkspaceGrant, Membership, ServiceAccount, CustomRole):
            s.execute(delete(model).where(model.org_id == org_id))
        s.execute(delete(Workspace).where(Workspace.org_id == org_id))
        members = org.get("members") or []
        _upsert_users(w.session, ((m["user"], m.get("email")) for m in members), now)
        _bulk(s, CustomRole, [
            {"id": r["id"], "org_id": org_id, "name": r.get("name", r["id"]), "level": r.get("level", WORKSPACE),
             "inherits": r.get("inherits") or None, "scopes": list(r.get("scopes") or []),
             "description": r.get("description", ""), "created_at": now, "updated_at": now}
            for r in org.get("custom_roles") or []
        ])
        _bulk(s, Membership, [
            {"org_id": org_id, "user_id": m["user"], "org_role": m.get("role", "Member"), "created_at": now}
            for m in members
        ])
        _bulk(s, ServiceAccount, [
            {"id": a["id"], "org_id": org_id, "name": a.get("name", a["id"]), "org_role": a.get("role", "Member"),
             "created_at": now}
            for a in org.get("service_accounts") or []
        ])
        workspaces = org.get("workspaces") or []
        _bulk(s, Workspace, [
            {"id": ws["id"], "org_id": org_id, "handle": ws["handle"], "name": ws.get("name", ws["handle"]),
             "default_role": ws.get("default_role") or None, "created_at": now}
            for ws in workspaces
        ])
        _bulk(s, WorkspaceGrant, [
            {"workspace_id": ws["id"], "subject": g["subject"], "org_id": org_id, "role": g["role"],
             "created_at": now}
            for ws in workspaces for g in ws.get("access") or []
        ])
        new_ws = {ws["id"] for ws in workspaces}
        w.change.workspaces_added = sorted(new_ws)
        w.change.workspaces_removed = sorted(old_ws - new_ws)
        w.change.reload = True
        return w.revision


def _bulk(session: Any, model: Any, rows: list[dict[str, Any]], chunk: int = 5000) -> None:
    for i in range(0, len(rows), chunk):
        session.execute(insert(model), rows[i : i + chunk])


def _upsert_users(session: Any, users: Iterable[tuple[str, str | None]], now: Any) -> None:
    wanted = dict(users)
    known: set[str] = set()
    ids = list(wanted)
    for i in range(0, len(ids), 5000):
        known |= set(session.scalars(select(User.id).where(User.id.in_(ids[i : i + 5000]))))
    _bulk(session, User, [
        {"id": u, "email": (e or None) and e.lower(), "created_at": now} for u, e in wanted.items() if u not in known
    ])
