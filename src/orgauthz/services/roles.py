"""Roles: built-in and custom, and the scope catalog (R20-R22).

A custom role lives at the organization or the workspace level, holds scopes of that level
only, and may inherit one built-in role of the same level (never Admin). Inherited scopes
are not copied: the engine resolves them from ``policies/`` when it builds the
organization, so they follow later changes to the built-in role. A role in use (by a
member, a service account, a workspace grant, a workspace default or a pending invitation)
cannot be deleted. Creating, changing or deleting a custom role makes replicas rebuild the
organization (``reload``).

:func:`check_role` is what the other services use to validate a role reference.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orgauthz.domain import bounds, rules
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet, RoleDef
from orgauthz.errors import FailedPrecondition, InvalidArgument, NotFound
from orgauthz.services.context import Actor, Management
from orgauthz.store.db import Write
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


def check_role(s: Session, policy: PolicySet, org_id: str, role: str, level: str, field_name: str) -> None:
    """InvalidArgument unless ``role`` is a built-in or this organization's custom role of ``level``."""
    row = s.get(CustomRole, role) if role not in policy.roles else None
    check_role_found(policy, org_id, role, level, field_name, (row.org_id, row.level) if row else (None, None))


def check_role_found(
    policy: PolicySet, org_id: str, role: str, level: str, field_name: str, custom: tuple[str | None, str | None]
) -> None:
    """:func:`check_role` given the custom role's (organization, level) as read by the
    caller (``(None, None)``: no custom role of that id)."""
    builtin = policy.roles.get(role)
    if builtin is not None:
        if builtin.level == level:
            return
    elif custom == (org_id, level):
        return
    kinds = ", ".join(r.name for r in policy.builtin_roles(level))
    raise InvalidArgument(field_name, f"must be a {level} role: {kinds} or a custom {level} role")


def check_scopes(policy: PolicySet, level: str, scopes: Sequence[str], *, inherits: str) -> list[str]:
    """Validates a custom role's own scopes; returns them sorted, without duplicates."""
    bounds.check_count("scopes", len(scopes), bounds.SCOPES_PER_ROLE_MAX, minimum=0 if inherits else 1)
    for i, scope in enumerate(scopes):
        bounds.check_scope_name(f"scopes[{i}]", scope)
        if not policy.is_scope(level, scope):
            raise InvalidArgument(f"scopes[{i}]", f"{scope!r} is not a {level} scope in the catalog")
    return sorted(set(scopes))


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
    """Built-in roles (key ``0:<name>``), then custom roles by id (``1:<id>``). Needs read:account_role."""
    await mgmt.require(actor, org_id, "read:account_role")
    policy = mgmt.policy
    rows: list[CustomRole] = await mgmt.read(
        lambda s: list(s.scalars(select(CustomRole).where(CustomRole.org_id == org_id).order_by(CustomRole.id)))
    )
    custom = {r.id: custom_role_def(r) for r in rows}
    entries: list[tuple[str, RoleView]] = [
        (f"0:{r.name}", _view(policy, r, {})) for r in sorted(policy.roles.values(), key=lambda r: r.name)
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
    """Needs create:account_role. InvalidArgument for a bad level, inheritance or scope."""
    policy = mgmt.policy
    builtin = policy.builtin_levels()
    rules.check_custom_role_id("id", role_id, builtin)
    if level not in LEVELS:
        raise InvalidArgument("level", "must be workspace or organization")
    rules.check_inherits("inherits", inherits=inherits, level=level, builtin_levels=builtin)
    own = check_scopes(policy, level, scopes, inherits=inherits)
    await mgmt.require(actor, org_id, "create:account_role")
    role_id = role_id or f"role-{secrets.token_hex(8)}"

    def body(w: Write) -> CustomRole:
        row = CustomRole(
            id=role_id,
            org_id=org_id,
            name=name,
            level=level,
            inherits=inherits or None,
            scopes=own,
            description=description,
            created_at=w.now,
            updated_at=w.now,
        )
        w.session.add(row)
        w.session.flush()
        w.change.reload = True
        Management.audit(
            w,
            actor,
            "orgauthz.role.created",
            f"role:{role_id}",
            details={"name": name, "level": level, "inherits": inherits, "scopes": own},
        )
        return row

    row, revision = await mgmt.write(org_id, "role.created", body)
    return custom_view(policy, row), revision


async def update_role(
    mgmt: Management, actor: Actor, org_id: str, role_id: str, *, name: str, scopes: Sequence[str], description: str
) -> tuple[RoleView, int]:
    """Replaces name, description and own scopes of a custom role. Needs update:account_role.

    Built-in roles are changed only in ``policies/`` (R23): InvalidArgument here.
    """
    policy = mgmt.policy
    if role_id in policy.roles:
        raise InvalidArgument("role", "built-in roles are changed in policies/, not through the API (R23)")
    await mgmt.require(actor, org_id, "update:account_role")

    def body(w: Write) -> CustomRole:
        row = w.session.get(CustomRole, role_id)
        if row is None or row.org_id != org_id:
            raise NotFound(f"role {role_id!r} not found")
        own = check_scopes(policy, row.level, scopes, inherits=row.inherits or "")
        before = {"name": row.name, "scopes": list(row.scopes)}
        row.name, row.scopes, row.description, row.updated_at = name, own, description, w.now
        w.session.flush()
        w.change.reload = True
        Management.audit(
            w,
            actor,
            "orgauthz.role.updated",
            f"role:{role_id}",
            details={"from": before, "to": {"name": name, "scopes": own}},
        )
        return row

    row, revision = await mgmt.write(org_id, "role.updated", body)
    return custom_view(policy, row), revision


def uses_of(s: Session, org_id: str, role_id: str) -> list[str]:
    """Where a role is referenced in the organization: what blocks its deletion (R22)."""
    checks = [
        (
            "members",
            select(func.count())
            .select_from(Membership)
            .where(Membership.org_id == org_id, Membership.org_role == role_id),
        ),
        (
            "service accounts",
            select(func.count())
            .select_from(ServiceAccount)
            .where(ServiceAccount.org_id == org_id, ServiceAccount.org_role == role_id),
        ),
        (
            "workspace grants",
            select(func.count())
            .select_from(WorkspaceGrant)
            .where(WorkspaceGrant.org_id == org_id, WorkspaceGrant.role == role_id),
        ),
        (
            "workspace default roles",
            select(func.count())
            .select_from(Workspace)
            .where(Workspace.org_id == org_id, Workspace.default_role == role_id),
        ),
        (
            "pending invitations",
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.org_id == org_id, Invitation.org_role == role_id, Invitation.status == "pending"),
        ),
    ]
    return [f"{n} {what}" for what, q in checks if (n := int(s.scalar(q) or 0))]


async def delete_role(mgmt: Management, actor: Actor, org_id: str, role_id: str) -> int:
    """Needs delete:account_role. FailedPrecondition while the role is in use (R22)."""
    if role_id in mgmt.policy.roles:
        raise InvalidArgument("role", "built-in roles cannot be deleted")
    await mgmt.require(actor, org_id, "delete:account_role")

    def body(w: Write) -> None:
        row = w.session.get(CustomRole, role_id)
        if row is None or row.org_id != org_id:
            raise NotFound(f"role {role_id!r} not found")
        used = uses_of(w.session, org_id, role_id)
        if used:
            raise FailedPrecondition(f"role {role_id!r} is in use ({', '.join(used)}); reassign them first")
        w.session.delete(row)
        w.change.reload = True
        Management.audit(w, actor, "orgauthz.role.deleted", f"role:{role_id}", details={"name": row.name})

    _, revision = await mgmt.write(org_id, "role.deleted", body)
    return revision
