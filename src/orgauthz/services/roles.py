"""Roles: built-in and custom, and the scope catalog (R20-R22).

A custom role lives at the organization or the workspace level, holds scopes of that level
only, and may inherit one built-in role of the same level (never Admin). Inherited scopes
are not copied: the engine resolves them from ``policies/`` when it builds the
organization, so they follow later changes to the built-in role. A role in use (by a
member, a service account, a workspace grant, a workspace default or a pending invitation)
cannot be deleted. Creating, changing or deleting a custom role makes replicas rebuild the
organization (``reload``).

:func:`role_read` and :func:`check_role_row` are what the other services use to validate
a role reference under the write lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select

from orgauthz.domain import bounds, rules
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet, RoleDef
from orgauthz.errors import InvalidArgument, NotFound
from orgauthz.services.context import Actor, Management, audit
from orgauthz.store import base as store
from orgauthz.store.base import AnySelect, Decision, Locked, Read
from orgauthz.store.models import (
    CustomRole,
    Invitation,
    Membership,
    ServiceAccount,
    Workspace,
    WorkspaceGrant,
)
from orgauthz.store.snapshots import custom_role_def

LEVELS = (WORKSPACE, ORGANIZATION)


@dataclass(frozen=True)
class RoleView:
    id: str
    name: str
    level: str
    description: str
    builtin: bool
    inherits: str
    scopes: list[str]
    effective_scopes: list[str]
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ScopeView:
    name: str
    level: str
    description: str
    includes: list[str] = field(default_factory=list)


# The custom role a write names (no row: none of that id), read under the write lock.
_CUSTOM_ROLE = select(CustomRole.org_id, CustomRole.level, CustomRole.scopes, CustomRole.inherits).where(
    CustomRole.id == bindparam("role")
)


def role_read(role: str) -> Read:
    """The read a write gives :func:`check_role_row` (see Store.commit)."""
    return _CUSTOM_ROLE, {"role": role}


def role_scopes(policy: PolicySet, level: str, role: str, row: Any | None) -> frozenset[str]:
    """Every scope ``role`` grants (R20-R22): the built-in role's of ``level``, or the custom
    role's read by :func:`role_read` (``row``; None: no such custom role, nothing). Empty
    role: nothing."""
    found = policy.role(level, role)
    if found is None and row is not None:
        found = RoleDef(role, row.level, "", tuple(row.scopes or ()), row.inherits or "", builtin=False)
    return policy.effective_scopes(policy.held_scopes(found)) if found is not None else frozenset()


def check_role_row(policy: PolicySet, org_id: str, role: str, level: str, field_name: str, row: Any | None) -> None:
    """:func:`check_role_found` given the row of :func:`role_read` (None: no such custom role)."""
    check_role_found(policy, org_id, role, level, field_name, (row.org_id, row.level) if row else (None, None))


def check_role_found(
    policy: PolicySet, org_id: str, role: str, level: str, field_name: str, custom: tuple[str | None, str | None]
) -> None:
    """InvalidArgument unless ``role`` is a built-in or this organization's custom role of
    ``level``, given the custom role's (organization, level) as read by the
    caller (``(None, None)``: no custom role of that id)."""
    if policy.role(level, role) is not None or (role not in policy.builtin_names() and custom == (org_id, level)):
        return
    kinds = ", ".join(r.name for r in policy.builtin_roles(level))
    raise InvalidArgument(field_name, f"must be a {level} role: {kinds} or a custom {level} role")


def check_scopes(policy: PolicySet, level: str, scopes: Sequence[str], *, inherits: str) -> list[str]:
    """Validates a custom role's own scopes; returns them sorted, without duplicates."""
    bounds.check_count("scopes", len(scopes), bounds.SCOPES_PER_ROLE_MAX, minimum=0 if inherits else 1)
    out: set[str] = set()
    for i, scope in enumerate(scopes):
        bounds.check_scope_name(f"scopes[{i}]", scope)
        scope = policy.current_id(scope)  # a renamed id is accepted for one release (R21)
        if not policy.is_scope(level, scope):
            raise InvalidArgument(f"scopes[{i}]", f"{scope!r} is not a {level} scope in the catalog")
        rules.check_custom_scope(f"scopes[{i}]", scope)
        out.add(scope)
    return sorted(out)


def role_permission(verb: str, level: str) -> str:
    """Prefect's ids (R21): custom workspace roles are ``*:workspace_role``, organization ones ``*:account_role``."""
    return f"{verb}:{'workspace_role' if level == 'workspace' else 'account_role'}"


def _view(
    policy: PolicySet, role: RoleDef, custom: dict[str, RoleDef], row: CustomRole | None = None, name: str = ""
) -> RoleView:
    held = policy.held_scopes(role, custom)
    return RoleView(
        id=role.name,
        name=name or role.name,
        level=role.level,
        description=role.description,
        builtin=role.builtin,
        inherits=role.inherits,
        scopes=sorted(policy.expand_wildcard(role.scopes)),
        effective_scopes=sorted(policy.effective_scopes(held)),
        created_at=row.created_at if row else None,
        updated_at=row.updated_at if row else None,
    )


def custom_view(policy: PolicySet, row: CustomRole) -> RoleView:
    role = custom_role_def(row)
    return _view(policy, role, {row.id: role}, row, row.name)


# -- reads ----------------------------------------------------------------------------------


async def list_roles(
    mgmt: Management, actor: Actor, org_id: str, *, level: str, page_size: int, after: str
) -> tuple[list[RoleView], str]:
    """Built-in roles (key ``0:<name>``), then custom roles by id (``1:<id>``).

    Needs read:account_role or read:workspace_role (with a level, the one of that level)."""
    levels = [level] if level in LEVELS else list(LEVELS)
    await mgmt.require_any(actor, org_id, [(role_permission("read", lv), "") for lv in levels])
    policy = mgmt.policy
    rows: list[CustomRole] = await mgmt.read(
        lambda s: list(s.scalars(select(CustomRole).where(CustomRole.org_id == org_id).order_by(CustomRole.id)))
    )
    custom = {r.id: custom_role_def(r) for r in rows}
    entries: list[tuple[str, RoleView]] = [
        (f"0:{r.name}:{r.level}", _view(policy, r, {}))
        for r in sorted(policy.all_roles(), key=lambda r: (r.name, r.level))
    ]
    entries += [(f"1:{r.id}", _view(policy, custom[r.id], custom, r, r.name)) for r in rows]
    entries = [(k, v) for k, v in entries if (not level or v.level == level) and k > after]
    page = entries[:page_size]
    token = page[-1][0] if len(entries) > page_size else ""
    return [v for _, v in page], token


def list_scope_catalog(policy: PolicySet, *, level: str, page_size: int, after: str) -> tuple[list[ScopeView], str]:
    """Workspace scopes (key ``0:<name>``), then organization permissions (``1:<name>``)."""
    entries = [
        (f"0:{s.name}", ScopeView(s.name, WORKSPACE, s.description, list(s.includes)))
        for s in policy.workspace_scopes.values()
    ]
    entries += [
        (f"1:{s.name}", ScopeView(s.name, ORGANIZATION, s.description, list(s.includes)))
        for s in policy.organization_permissions.values()
    ]
    entries = sorted((k, v) for k, v in entries if (not level or v.level == level) and k > after)
    page = entries[:page_size]
    token = page[-1][0] if len(entries) > page_size else ""
    return [v for _, v in page], token


# -- writes ---------------------------------------------------------------------------------

# The custom role a write changes, read under the write lock.
_ROLE_ROW = select(
    CustomRole.id,
    CustomRole.org_id,
    CustomRole.name,
    CustomRole.level,
    CustomRole.inherits,
    CustomRole.scopes,
    CustomRole.description,
    CustomRole.created_at,
    CustomRole.updated_at,
).where(CustomRole.id == bindparam("role"), CustomRole.org_id == bindparam("org"))

# Where a role is referenced in its organization: what blocks its deletion (R22).
_USES: dict[str, AnySelect] = {
    "members": select(func.count())
    .select_from(Membership)
    .where(Membership.org_id == bindparam("org"), Membership.org_role == bindparam("role")),
    "service accounts": select(func.count())
    .select_from(ServiceAccount)
    .where(ServiceAccount.org_id == bindparam("org"), ServiceAccount.org_role == bindparam("role")),
    "workspace grants": select(func.count())
    .select_from(WorkspaceGrant)
    .where(WorkspaceGrant.org_id == bindparam("org"), WorkspaceGrant.role == bindparam("role")),
    "workspace default roles": select(func.count())
    .select_from(Workspace)
    .where(Workspace.org_id == bindparam("org"), Workspace.default_role == bindparam("role")),
    "pending invitations": select(func.count())
    .select_from(Invitation)
    .where(
        Invitation.org_id == bindparam("org"), Invitation.org_role == bindparam("role"), Invitation.status == "pending"
    ),
}


async def _level_of(mgmt: Management, org_id: str, role_id: str) -> str:
    """The custom role's level (it never changes), to pick the permission; NotFound when absent."""
    level = await mgmt.read(
        lambda s: s.scalar(select(CustomRole.level).where(CustomRole.org_id == org_id, CustomRole.id == role_id))
    )
    if level is None:
        raise NotFound(f"role {role_id!r} not found")
    return str(level)


def _role_row(at: Locked, role_id: str) -> Any:
    found = at.one("role")
    if found is None:
        raise NotFound(f"role {role_id!r} not found")
    return found


async def create_role(
    mgmt: Management,
    actor: Actor,
    org_id: str,
    *,
    role_id: str,
    name: str,
    level: str,
    inherits: str,
    scopes: Sequence[str],
    description: str,
) -> tuple[RoleView, int]:
    """Needs create:workspace_role or create:account_role (by level). InvalidArgument for a bad
    level, inheritance or scope."""
    policy = mgmt.policy
    rules.check_custom_role_id("id", role_id, policy.builtin_names())
    if level not in LEVELS:
        raise InvalidArgument("level", "must be workspace or organization")
    rules.check_inherits("inherits", inherits=inherits, level=level, builtin=policy.builtin_names(level))
    own = check_scopes(policy, level, scopes, inherits=inherits)
    await mgmt.require(actor, org_id, role_permission("create", level))
    rules.check_role_author(await mgmt.org_role_of(actor, org_id))
    role_id = role_id or f"role-{secrets.token_hex(8)}"

    def decide(at: Locked) -> Decision[RoleView]:
        values = {
            "id": role_id,
            "org_id": org_id,
            "name": name,
            "level": level,
            "inherits": inherits or None,
            "scopes": own,
            "description": description,
            "created_at": at.now,
            "updated_at": at.now,
        }
        return Decision(
            custom_view(policy, CustomRole(**values)),
            writes=[store.insert(CustomRole, values)],
            audits=[
                audit(
                    actor,
                    "orgauthz.role.created",
                    f"role:{role_id}",
                    details={"name": name, "level": level, "inherits": inherits, "scopes": own},
                )
            ],
            change=at.change(reload=True),
        )

    return await mgmt.write(org_id, "role.created", {}, decide)


async def update_role(
    mgmt: Management, actor: Actor, org_id: str, role_id: str, *, name: str, scopes: Sequence[str], description: str
) -> tuple[RoleView, int]:
    """Replaces name, description and own scopes of a custom role. Needs update:workspace_role
    or update:account_role (by the role's level).

    Built-in roles are changed only in ``policies/`` (R23): InvalidArgument here.
    """
    policy = mgmt.policy
    if role_id in policy.builtin_names():
        raise InvalidArgument("role", "built-in roles are changed in policies/, not through the API (R23)")
    await mgmt.require(actor, org_id, role_permission("update", await _level_of(mgmt, org_id, role_id)))
    rules.check_role_author(await mgmt.org_role_of(actor, org_id))

    def decide(at: Locked) -> Decision[RoleView]:
        row = _role_row(at, role_id)
        own = check_scopes(policy, row.level, scopes, inherits=row.inherits or "")
        before = {"name": row.name, "scopes": list(row.scopes)}
        changed = {"name": name, "scopes": own, "description": description, "updated_at": at.now}
        return Decision(
            custom_view(policy, CustomRole(**{**row._asdict(), **changed})),
            writes=[store.update(CustomRole, {"id": role_id}, **changed)],
            audits=[
                audit(
                    actor,
                    "orgauthz.role.updated",
                    f"role:{role_id}",
                    details={"from": before, "to": {"name": name, "scopes": own}},
                )
            ],
            change=at.change(reload=True),
        )

    return await mgmt.write(org_id, "role.updated", {"role": (_ROLE_ROW, {"role": role_id, "org": org_id})}, decide)


async def delete_role(mgmt: Management, actor: Actor, org_id: str, role_id: str) -> int:
    """Needs delete:workspace_role or delete:account_role (by level). FailedPrecondition while the
    role is in use (R22)."""
    if role_id in mgmt.policy.builtin_names():
        raise InvalidArgument("role", "built-in roles cannot be deleted")
    await mgmt.require(actor, org_id, role_permission("delete", await _level_of(mgmt, org_id, role_id)))
    rules.check_role_author(await mgmt.org_role_of(actor, org_id))
    key = {"role": role_id, "org": org_id}
    reads: dict[str, Read] = {"role": (_ROLE_ROW, key), **{what: (q, key) for what, q in _USES.items()}}

    def decide(at: Locked) -> Decision[None]:
        row = _role_row(at, role_id)
        rules.check_role_unused(role_id, {what: int(at[what][0][0]) for what in _USES})
        return Decision(
            None,
            writes=[store.delete(CustomRole, id=role_id)],
            audits=[audit(actor, "orgauthz.role.deleted", f"role:{role_id}", details={"name": row.name})],
            change=at.change(reload=True),
        )

    _, revision = await mgmt.write(org_id, "role.deleted", reads, decide)
    return revision
