"""How access facts are written as Casbin policy lines (see policies/model.conf).

Every function returns lines as tuples ``(ptype, *values)``. The same lines feed the
orgauthz engine, the change feed, and the plain ``casbin.Enforcer`` used as a reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Final

from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, ObjectKind, PolicySet, RoleDef, role_key

Line = tuple[str, ...]

MEMBER: Final = "member"
ACL: Final = "acl"  # g4: an object node reaches it when the object has an ACL (R26)


def org_domain(org_id: str) -> str:
    return f"org:{org_id}"


def ws_domain(workspace_id: str) -> str:
    return f"ws:{workspace_id}"


def role_name(role_ref: str) -> str:
    """A workspace role (built-in or custom) as Casbin names it: ``role:<ref>``."""
    return role_key(WORKSPACE, role_ref)


def org_role_name(role_ref: str) -> str:
    """An organization role (built-in or custom) as Casbin names it: ``orgrole:<ref>``, apart
    from workspace roles, since built-in names repeat across levels (Owner, R1 and R20)."""
    return role_key(ORGANIZATION, role_ref)


def membership_lines(subject: str, org_id: str, org_role: str) -> list[Line]:
    """A member or service account of ``org_id`` holding ``org_role`` there (R1, R11)."""
    dom = org_domain(org_id)
    return [("g", subject, org_role_name(org_role), dom), ("g", subject, MEMBER, dom)]


def grant_line(subject: str, workspace_id: str, role_ref: str) -> Line:
    """``subject`` holds workspace role ``role_ref`` in the workspace (R16)."""
    return ("g", subject, role_name(role_ref), ws_domain(workspace_id))


def team_subject(team_id: str) -> str:
    """A team as a grant's subject and as the role its members hold: ``team:<id>`` (R25)."""
    return f"team:{team_id}"


def team_link(member: str, team_id: str, workspace_id: str) -> Line:
    """``member`` belongs to the team, written in each workspace where the team holds a role:
    Casbin resolves ``member -> team:<id> -> role:<X>`` within that workspace's domain, so a
    decision through a team stays one enforcement of the same model (R18, R25)."""
    return ("g", member, team_subject(team_id), ws_domain(workspace_id))


def team_links(members: Iterable[str], team_id: str, workspaces: Iterable[str]) -> list[Line]:
    """Every :func:`team_link` of ``members`` across ``workspaces`` (the team's grants)."""
    spaces = list(workspaces)
    return [team_link(m, team_id, ws) for m in members for ws in spaces]


# -- object access control lists (R26, R27) ----------------------------------------------


@dataclass(frozen=True)
class AclEntry:
    """One actor (``user:``, ``service_account:`` or ``team:<id>``) listed at ``level``;
    ``grant``: a grant entry, which gives that level even without the workspace scope."""

    actor: str
    level: str
    grant: bool = False


def object_node(workspace_id: str, obj: str, level: str) -> str:
    """The object ``<kind>:<id>`` of the workspace at ``level``: ``<workspace>/<kind>:<id>#<level>``
    ("/" and "#" are in no id, so a node names one object and level)."""
    return f"{workspace_id}/{obj}#{level}"


def object_need(policy: PolicySet, workspace_id: str, obj: str, scope: str) -> str:
    """The request's ``r.res`` for ``scope`` on ``obj``: the object's node at the level that
    governs the scope, or "" when the object's kind does not govern it (or there is no object)."""
    if not obj:
        return ""
    kind = policy.object_kinds.get(obj.partition(":")[0])
    level = kind.governs.get(scope) if kind is not None else None
    return object_node(workspace_id, obj, level) if level else ""


def entry_lines(kind: ObjectKind, org_id: str, workspace_id: str, obj: str, entry: AclEntry) -> list[Line]:
    """One entry's own lines: its level's node reaches the actor (g4); a grant entry's actor is
    reached from its level's node and every node below it (g5). No two entries share a line,
    so removing an entry is removing its lines."""
    dom = org_domain(org_id)
    out: list[Line] = [("g4", object_node(workspace_id, obj, entry.level), entry.actor, dom)]
    if entry.grant:
        below = kind.levels[: kind.levels.index(entry.level) + 1]
        out += [("g5", object_node(workspace_id, obj, level), entry.actor, dom) for level in below]
    return out


def acl_lines(kind: ObjectKind, org_id: str, workspace_id: str, obj: str, entries: Iterable[AclEntry]) -> list[Line]:
    """The lines of ``obj``'s own ACL: each level reaches the next one up and the top one
    reaches ``acl`` (g4), then each entry's :func:`entry_lines`."""
    dom = org_domain(org_id)
    nodes = [object_node(workspace_id, obj, level) for level in kind.levels]
    out: list[Line] = [("g4", a, b, dom) for a, b in pairwise(nodes)]
    out.append(("g4", nodes[-1], ACL, dom))
    for e in entries:
        out += entry_lines(kind, org_id, workspace_id, obj, e)
    return out


def delegation_lines(kind: ObjectKind, org_id: str, workspace_id: str, deployment: str, pool: str) -> list[Line]:
    """R27: the deployment's work pool has an ACL, which governs the deployment level for level."""
    dom = org_domain(org_id)
    return [
        (ptype, object_node(workspace_id, deployment, level), object_node(workspace_id, pool, level), dom)
        for ptype in ("g4", "g5")
        for level in kind.levels
    ]


def team_member_lines(org_id: str, team_id: str, members: Iterable[str]) -> list[Line]:
    """The team's members, for the ACL entries that name the team (g4, g5; R25, R26)."""
    dom, team = org_domain(org_id), team_subject(team_id)
    return [(ptype, team, m, dom) for m in members for ptype in ("g4", "g5")]


Acls = Mapping[tuple[str, str], Iterable[AclEntry]]  # (workspace, object) -> entries


def object_lines(
    policy: PolicySet, org_id: str, workspace_id: str, obj: str, acls: Acls, pools: Mapping[tuple[str, str], str]
) -> list[Line]:
    """The lines that decide ``obj``: its work pool's delegation when the deployment names a
    work pool with an ACL (R27), else its own ACL's, else none. ``acls``: the workspace's ACLs
    (an ACL may have no entries); ``pools``: (workspace, deployment object) -> work pool object."""
    kind = policy.object_kinds[obj.partition(":")[0]]
    pool = pools.get((workspace_id, obj)) if kind.delegates_to else None
    if pool is not None and (workspace_id, pool) in acls:
        return delegation_lines(kind, org_id, workspace_id, obj, pool)
    entries = acls.get((workspace_id, obj))
    return [] if entries is None else acl_lines(kind, org_id, workspace_id, obj, entries)


def default_role_line(workspace_id: str, role_ref: str) -> Line:
    """The workspace's default role for "Anyone at <organization>" (R17)."""
    return ("g3", ws_domain(workspace_id), role_name(role_ref))


def role_policy_lines(policy: PolicySet, role: RoleDef, custom: Mapping[str, RoleDef]) -> list[Line]:
    """``p`` lines: every scope the role holds, inherited ones written out (R22)."""
    return [("p", role.key, s) for s in sorted(policy.held_scopes(role, dict(custom)))]


def builtin_policy_lines(policy: PolicySet) -> list[Line]:
    lines: list[Line] = []
    for role in policy.all_roles():
        lines.extend(role_policy_lines(policy, role, {}))
    return lines


def include_lines(policy: PolicySet) -> list[Line]:
    """``g2`` lines: scope includes (R21)."""
    table = {**policy.workspace_scopes, **policy.organization_permissions}
    return [("g2", s.name, inc) for s in table.values() for inc in s.includes]


@dataclass
class OrgSnapshot:
    """One organization's access facts at ``revision``, as read from the store."""

    org_id: str
    revision: int
    workspaces: dict[str, str | None] = field(default_factory=dict)  # id -> default role
    members: dict[str, str] = field(default_factory=dict)  # user id -> org role
    service_accounts: dict[str, str] = field(default_factory=dict)  # sa id -> org role
    grants: list[tuple[str, str, str]] = field(default_factory=list)  # (ws, subject, role); subject may be a team
    custom_roles: dict[str, RoleDef] = field(default_factory=dict)  # id -> role
    teams: dict[str, list[str]] = field(default_factory=dict)  # team id -> member subjects (R25)
    acls: dict[tuple[str, str], list[AclEntry]] = field(default_factory=dict)  # (ws, object) -> entries (R26)
    pools: dict[tuple[str, str], str] = field(default_factory=dict)  # (ws, deployment obj) -> pool obj (R27)

    def access_lines(self) -> Iterator[Line]:
        """``g`` and ``g3`` lines of this organization (no ``p``/``g2``)."""
        for user, role in self.members.items():
            yield from membership_lines(f"user:{user}", self.org_id, role)
        for sa, role in self.service_accounts.items():
            yield from membership_lines(f"service_account:{sa}", self.org_id, role)
        for ws, subject, role in self.grants:
            yield grant_line(subject, ws, role)
            if subject.startswith("team:"):
                team = subject.removeprefix("team:")
                for member in self.teams.get(team, ()):
                    yield team_link(member, team, ws)
        for ws, default in self.workspaces.items():
            if default:
                yield default_role_line(ws, default)

    def decision_lines(self, policy: PolicySet) -> Iterator[Line]:
        """Every ``g``-kind line of this organization: :meth:`access_lines` and :meth:`acl_lines`."""
        yield from self.access_lines()
        yield from self.acl_lines(policy)

    def acl_lines(self, policy: PolicySet) -> Iterator[Line]:
        """``g4`` and ``g5`` lines of this organization: teams' members, then every object
        with an ACL or a work pool (R25, R26, R27)."""
        for team, members in self.teams.items():
            yield from team_member_lines(self.org_id, team, members)
        for ws, obj in sorted({*self.acls, *self.pools}):
            yield from object_lines(policy, self.org_id, ws, obj, self.acls, self.pools)

    def policy_lines(self, policy: PolicySet) -> list[Line]:
        """``p`` lines for the built-in roles and this organization's custom roles."""
        lines = builtin_policy_lines(policy)
        for role in self.custom_roles.values():
            lines.extend(role_policy_lines(policy, role, self.custom_roles))
        return lines


def all_lines(policy: PolicySet, snapshots: Iterable[OrgSnapshot]) -> list[Line]:
    """Every line for the given organizations, as one plain ``casbin.Enforcer`` would hold them."""
    lines = builtin_policy_lines(policy) + include_lines(policy)
    for snap in snapshots:
        for role in snap.custom_roles.values():
            lines.extend(role_policy_lines(policy, role, snap.custom_roles))
        lines.extend(snap.decision_lines(policy))
    return lines
