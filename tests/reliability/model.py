"""A plain-Python model of SPEC §1 for one organization, used by the privilege-escalation
state machine. It reads only the YAML of ``policies/`` (the reviewed data, R23) and shares
no code with ``orgauthz.engine`` or ``orgauthz.domain``.

It answers two questions: what a subject may do (``scopes``, ``permissions``), and
whether a management operation by an actor must be allowed (R2, R3, R8, R11, R16, R17).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ADMIN, MEMBER = "Admin", "Member"


def _load() -> tuple[
    dict[str, list[str]], dict[str, list[str]], dict[str, dict[str, object]], dict[str, dict[str, object]]
]:
    scopes = yaml.safe_load((POLICIES / "scopes.yaml").read_text())
    roles = yaml.safe_load((POLICIES / "roles.yaml").read_text())
    ws = {k: list((v or {}).get("includes") or []) for k, v in scopes["workspace_scopes"].items()}
    org = {k: list((v or {}).get("includes") or []) for k, v in scopes["organization_permissions"].items()}
    return ws, org, roles["workspace_roles"], roles["organization_roles"]


WS_SCOPES, ORG_PERMISSIONS, WS_ROLES, ORG_ROLES = _load()
CATALOG = {**WS_SCOPES, **ORG_PERMISSIONS}


def _closure(held: set[str]) -> set[str]:
    """R21: a scope grants everything it includes, transitively."""
    out, todo = set(), list(held)
    while todo:
        s = todo.pop()
        if s in out or s not in CATALOG:
            continue
        out.add(s)
        todo += CATALOG[s]
    return out


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

    def role_scopes(self, role: str) -> set[str]:
        written: set[str] = set()
        seen: set[str] = set()
        name = role
        while name and name not in seen:
            seen.add(name)
            if name in self.custom:
                c = self.custom[name]
                written |= set(c.scopes)
                name = c.inherits
                continue
            d = WS_ROLES.get(name) or ORG_ROLES.get(name) or {}
            listed = list(d.get("scopes") or [])  # type: ignore[call-overload]
            written |= set(CATALOG) if "*" in listed else set(listed)
            name = str(d.get("inherits") or "")
        return _closure(written)

    def org_role(self, subject: str) -> str | None:
        kind, _, ident = subject.partition(":")
        return self.members.get(ident) if kind == "user" else self.service_accounts.get(ident)

    def scopes(self, subject: str, workspace: str) -> set[str]:
        """R2a, R17, R18: Admin holds all; else grant's scopes plus the default role's (users only)."""
        role = self.org_role(subject)
        if role is None or workspace not in self.workspaces:
            return set()
        if role == ADMIN:
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
        if role == ADMIN:
            return set(ORG_PERMISSIONS)
        return self.role_scopes(role) & set(ORG_PERMISSIONS)

    def is_admin(self, subject: str) -> bool:
        return self.org_role(subject) == ADMIN and subject.startswith("user:")

    def admins(self) -> set[str]:
        return {u for u, r in self.members.items() if r == ADMIN}

    def in_org(self, subject: str) -> bool:
        return self.org_role(subject) is not None

    # -- what an operation must do -------------------------------------------------------

    def may_manage_access(self, actor: str, workspace: str) -> bool:
        """R16: organization Admins (update:workspace) and the workspace's Owners."""
        return "update:workspace" in self.permissions(actor) or "manage_workspace_users" in self.scopes(
            actor, workspace
        )

    def may_set_default(self, actor: str, workspace: str) -> bool:
        return "update:workspace" in self.permissions(actor) or "manage_workspace_default_role" in self.scopes(
            actor, workspace
        )

    def may_invite(self, actor: str, role: str) -> bool:
        """R8: only Admins invite Admins; R10: members plus pending within the limit."""
        if "create:invitation" not in self.permissions(actor):
            return False
        if role == ADMIN and not self.is_admin(actor):
            return False
        return len(self.members) + 1 <= self.max_members

    def may_change_role(self, actor: str, user: str, role: str) -> bool:
        """R8 and R3."""
        if "update:account_membership" not in self.permissions(actor) or user not in self.members:
            return False
        before = self.members[user]
        if ADMIN in (role, before) and not self.is_admin(actor):
            return False
        return not (before == ADMIN and role != ADMIN and len(self.admins()) <= 1)

    def may_remove(self, actor: str, user: str) -> bool:
        """R3, R8; a member may leave."""
        leaving = actor == f"user:{user}"
        if not leaving and "delete:account_membership" not in self.permissions(actor):
            return False
        if leaving and not self.in_org(actor):
            return False
        if user not in self.members:
            return False
        if self.members[user] == ADMIN:
            if not leaving and not self.is_admin(actor):
                return False
            if len(self.admins()) <= 1:
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
