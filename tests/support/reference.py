"""A plain-Python reference of the access rules, written straight from SPEC §1.

It reads only the data of the policy files (scope catalog, role definitions) and the
organizations' facts; it shares no code with ``orgauthz.engine`` or
``orgauthz.domain.lines`` and knows nothing of Casbin. Tests compare the engine's
decisions with it.

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
- Unknown subjects, workspaces and organizations: deny.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orgauthz.domain.lines import OrgSnapshot
from orgauthz.domain.policy import PolicySet, RoleDef

ADMIN = "Admin"


@dataclass(frozen=True)
class Source:
    """Where a held scope comes from: ``("organization", "Admin")``, ``("workspace", "Developer")``,
    ``("default", "Viewer")``."""

    kind: str
    role: str


class Reference:
    """Decides from the organizations' facts and the policy data, nothing else."""

    def __init__(self, policy: PolicySet, orgs: Iterable[OrgSnapshot]) -> None:
        self.policy = policy
        self.orgs = {o.org_id: o for o in orgs}
        self.workspace_org = {ws: o.org_id for o in self.orgs.values() for ws in o.workspaces}
        self._catalog = {**policy.workspace_scopes, **policy.organization_permissions}
        self._memo: dict[tuple[str, str], frozenset[str]] = {}

    # -- roles and scopes -------------------------------------------------------------

    def _role(self, org: OrgSnapshot, name: str) -> RoleDef | None:
        return org.custom_roles.get(name) or self.policy.roles.get(name)

    def _grants(self, scope: str) -> set[str]:
        """The scope and every scope it includes, transitively (R21)."""
        out, todo = set(), [scope]
        while todo:
            s = todo.pop()
            if s in out or s not in self._catalog:
                continue
            out.add(s)
            todo.extend(self._catalog[s].includes)
        return out

    def role_scopes(self, org: OrgSnapshot, name: str) -> frozenset[str]:
        """Every scope the role grants: its own, its ancestors' (R22), and their includes (R21)."""
        key = (org.org_id, name)
        if key not in self._memo:
            self._memo[key] = frozenset(self._role_scopes(org, name))
        return self._memo[key]

    def _role_scopes(self, org: OrgSnapshot, name: str) -> set[str]:
        written: set[str] = set()
        seen: set[str] = set()
        role = self._role(org, name)
        while role is not None and role.name not in seen:
            seen.add(role.name)
            for s in role.scopes:
                written |= set(self._catalog) if s == "*" else {s}
            role = self._role(org, role.inherits) if role.inherits else None
        out: set[str] = set()
        for s in written:
            out |= self._grants(s)
        return out

    # -- facts about subjects ------------------------------------------------------------

    @staticmethod
    def _org_role(org: OrgSnapshot, subject: str) -> str | None:
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
            if org_role == ADMIN and scope in self.policy.workspace_scopes:
                out.add(Source("organization", ADMIN))  # R2a, whatever roles.yaml says
            for ws, sub, role in org.grants:
                if ws == workspace and sub == subject and scope in self.role_scopes(org, role):
                    out.add(Source("workspace", role))
            default = org.workspaces.get(workspace)
            if default and subject.startswith("user:") and scope in self.role_scopes(org, default):
                out.add(Source("default", default))  # R17: users only
            return out
        org = self.orgs.get(organization)
        if org is None:
            return out
        org_role = self._org_role(org, subject)
        if org_role == ADMIN and scope in self.policy.organization_permissions:
            out.add(Source("organization", ADMIN))  # R2: Admins can do everything
        elif org_role is not None and scope in self.role_scopes(org, org_role):
            out.add(Source("organization", org_role))
        return out

    def check(self, subject: str, *, workspace: str = "", organization: str = "", scope: str) -> bool:
        return bool(self.sources(subject, workspace=workspace, organization=organization, scope=scope))

    def scopes(self, subject: str, *, workspace: str = "", organization: str = "") -> set[str]:
        """The subject's effective scopes (workspace) or permissions (organization)."""
        table = self.policy.workspace_scopes if workspace else self.policy.organization_permissions
        return {s for s in table if self.check(subject, workspace=workspace, organization=organization, scope=s)}
