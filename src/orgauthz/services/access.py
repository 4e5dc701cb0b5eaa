"""Workspace access: grant, change, revoke and list workspace roles (R16, R28).

Only organization Owners and Admins and whoever holds ``manage_workspace_users`` in the
workspace (its Owners: the built-in role or a custom one) may change access; no permission
of a custom organization role grants it (R16). Whoever is not an organization Owner or
Admin may grant, change or revoke only roles all of whose scopes it holds there itself, and
not its own access (R28). The subject must be a member or a service account of the
workspace's organization, checked inside the write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, exists, literal, select

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.lines import Line
from orgauthz.domain.policy import WORKSPACE, PolicySet
from orgauthz.errors import AlreadyExists, NotFound
from orgauthz.services import acl_removal
from orgauthz.services.context import Actor, Authority, Management, audit
from orgauthz.services.roles import check_role_row, role_read, role_scopes
from orgauthz.services.workspaces import find_workspace
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read, Write
from orgauthz.store.models import CustomRole, Membership, ServiceAccount, Team, TeamMember, Workspace, WorkspaceGrant

_MANAGE = "manage_workspace_users"


@dataclass(frozen=True)
class _Ws:
    id: str
    org_id: str


async def locate(mgmt: Management, actor: Actor, workspace_id: str) -> _Ws:
    """The workspace's organization from the engine's index (no database read on the write
    path; the write re-checks the workspace under its lock), else from the store. NotFound
    unless the actor is in that organization."""
    org_id = mgmt.engine.org_of(workspace_id)
    if org_id is None:
        org_id = (await find_workspace(mgmt, actor, workspace_id)).org_id
    else:
        try:
            await mgmt.require_member(actor, org_id)
        except NotFound:
            raise NotFound(f"workspace {workspace_id!r} not found") from None
    return _Ws(workspace_id, org_id)


async def _manager(mgmt: Management, actor: Actor, workspace_id: str) -> tuple[_Ws, Authority]:
    """R16: the actor holds ``manage_workspace_users`` in the workspace (organization Owners
    and Admins hold every scope, R2); its authority there, for R28."""
    ws = await locate(mgmt, actor, workspace_id)
    await mgmt.require(actor, ws.org_id, _MANAGE, workspace_id)
    return ws, await mgmt.authority(actor, ws.org_id, workspace_id)


def _check_escalation(
    authority: Authority, actor: Actor, subject: str, scopes: frozenset[str], what: str, members: Sequence[str] = ()
) -> None:
    """R28; a team's access is its members' own (``members``: the team's, when ``subject`` is one)."""
    rules.check_no_escalation(
        actor_is_admin=authority.is_admin,
        actor_scopes=authority.scopes,
        role_scopes=scopes,
        own_access=subject == actor.subject or actor.subject in members,
        what=what,
    )


# What grant, change and revoke read under the write lock, built once with bindparams.
_HELD = exists().where(WorkspaceGrant.workspace_id == bindparam("ws"), WorkspaceGrant.subject == bindparam("subject"))
_IN_ORG = {
    "user": exists().where(Membership.org_id == bindparam("org"), Membership.user_id == bindparam("ident")),
    "service_account": exists().where(
        ServiceAccount.id == bindparam("ident"), ServiceAccount.org_id == bindparam("org")
    ),
    "team": exists().where(Team.id == bindparam("ident"), Team.org_id == bindparam("org")),
}
# A team's members (R25): its grant is written for each of them (``lines.team_links``).
_TEAM_MEMBERS = select(TeamMember.subject).where(TeamMember.team_id == bindparam("team"))
# Whether the workspace exists, the subject is in the organization (R16), and already has a role.
_GRANT_CHECKS = {
    kind: select(
        exists().where(Workspace.id == bindparam("ws")).label("found"),
        in_org.label("in_org"),
        _HELD.label("held"),
    )
    for kind, in_org in _IN_ORG.items()
}
# The workspace (one row if it exists), the subject's role there (None: no grant) and, when
# that is a custom role, what it grants (for R28).
_GRANT_OF = (
    select(Workspace.id, WorkspaceGrant.role, CustomRole.level, CustomRole.scopes, CustomRole.inherits)
    .outerjoin(
        WorkspaceGrant,
        and_(WorkspaceGrant.workspace_id == Workspace.id, WorkspaceGrant.subject == bindparam("subject")),
    )
    .outerjoin(CustomRole, CustomRole.id == WorkspaceGrant.role)
    .where(Workspace.id == bindparam("ws"))
)
# Every workspace grant of a subject in an organization.
_GRANTS_OF = select(WorkspaceGrant.workspace_id, WorkspaceGrant.role).where(
    WorkspaceGrant.org_id == bindparam("org"), WorkspaceGrant.subject == bindparam("subject")
)


def _existing(at: Locked, ws: _Ws, subject: str) -> str:
    """The subject's role in the workspace, from the write's ``_GRANT_OF`` read."""
    found = at.one("grant")
    if found is None:
        raise NotFound(f"workspace {ws.id!r} not found")
    if found.role is None:
        raise NotFound(f"{subject} has no access to workspace {ws.id!r}")
    return str(found.role)


def _held_role_scopes(mgmt: Management, at: Locked, role: str) -> frozenset[str]:
    """What the subject's present role (``role``, from ``_GRANT_OF``) grants."""
    found = at.one("grant")
    return role_scopes(mgmt.policy, WORKSPACE, role, found if found is not None and found.level is not None else None)


def _grant_row(at: Locked, ws: _Ws, subject: str, role: str) -> WorkspaceGrant:
    """The grant as it stands after the write (for the answer)."""
    return WorkspaceGrant(workspace_id=ws.id, subject=subject, org_id=ws.org_id, role=role, created_at=at.now)


# The subject's team memberships and, for each, the workspaces where the team holds a role.
_TEAM_LINKS_OF = (
    select(TeamMember.team_id, WorkspaceGrant.workspace_id)
    .outerjoin(WorkspaceGrant, WorkspaceGrant.subject == literal("team:") + TeamMember.team_id)
    .where(TeamMember.org_id == bindparam("org"), TeamMember.subject == bindparam("subject"))
)


def removal_reads(org_id: str, subject: str) -> dict[str, Read]:
    """The reads :func:`removal` needs: the subject's workspace grants, team memberships and
    ACL entries."""
    return {
        "grants": (_GRANTS_OF, {"org": org_id, "subject": subject}),
        "teams": (_TEAM_LINKS_OF, {"org": org_id, "subject": subject}),
        **acl_removal.naming_reads(org_id, subject),
    }


def removal(policy: PolicySet, at: Locked, org_id: str, subject: str, org_role: str) -> tuple[list[Write], list[Line]]:
    """Deleting every workspace grant, team membership and ACL entry of ``subject`` in the
    organization (read by :func:`removal_reads`) and the removal of its membership, grant,
    team and ACL lines, so its next Check anywhere there is denied (R4, R13, R25, R26). The
    caller deletes the member row."""
    grants, teams = at["grants"], at["teams"]
    lines = [
        *L.membership_lines(subject, org_id, org_role),
        *(L.grant_line(subject, ws, role) for ws, role in grants),
        *(L.team_link(subject, team, ws) for team, ws in teams if ws is not None),
    ]
    for team in sorted({str(team) for team, _ in teams}):
        lines += L.team_member_lines(org_id, team, [subject])
    acl_writes, acl_lines = acl_removal.entries_removal(policy, at, org_id, subject)
    writes = [
        store.delete(WorkspaceGrant, org_id=org_id, subject=subject),
        store.delete(TeamMember, org_id=org_id, subject=subject),
        *acl_writes,
    ]
    return writes, lines + acl_lines


async def grant(
    mgmt: Management, actor: Actor, workspace_id: str, subject: str, role: str
) -> tuple[WorkspaceGrant, int]:
    """AlreadyExists when the subject already has a role here (use change);
    FailedPrecondition when it is not in the organization (R16)."""
    ws, authority = await _manager(mgmt, actor, workspace_id)
    kind, _, ident = subject.partition(":")
    checks = _GRANT_CHECKS[kind if kind in _GRANT_CHECKS else "service_account"]
    reads = {
        "checks": (checks, {"ws": workspace_id, "subject": subject, "org": ws.org_id, "ident": ident}),
        "role": role_read(role),
        **_members_read(subject),
    }

    def decide(at: Locked) -> Decision[WorkspaceGrant]:
        found, in_org, held = at["checks"][0]
        if not found:
            raise NotFound(f"workspace {workspace_id!r} not found")
        check_role_row(mgmt.policy, ws.org_id, role, WORKSPACE, "role", at.one("role"))
        rules.check_grantee(subject, in_org=in_org)
        members = _members(at)
        scopes = role_scopes(mgmt.policy, WORKSPACE, role, at.one("role"))
        _check_escalation(authority, actor, subject, scopes, "grant", members)
        if held:
            raise AlreadyExists(f"{subject} already has access to workspace {workspace_id!r}")
        row = {
            "workspace_id": workspace_id,
            "subject": subject,
            "org_id": ws.org_id,
            "role": role,
            "created_at": at.now,
        }
        return Decision(
            _grant_row(at, ws, subject, role),
            writes=[store.insert(WorkspaceGrant, row)],
            audits=[
                audit(
                    actor, "orgauthz.workspace-access.granted", subject, workspace=workspace_id, details={"role": role}
                )
            ],
            change=at.change(
                add=[L.grant_line(subject, workspace_id, role), *_team_links(subject, members, workspace_id)]
            ),
        )

    return await mgmt.write(ws.org_id, "workspace-access.granted", reads, decide)


def _members_read(subject: str) -> dict[str, Read]:
    """For a team's grant, the read of its members (none for a user or service account)."""
    kind, _, ident = subject.partition(":")
    return {"members": (_TEAM_MEMBERS, {"team": ident})} if kind == "team" else {}


def _members(at: Locked) -> list[str]:
    return [str(r.subject) for r in at["members"]] if "members" in at.rows else []


def _team_links(subject: str, members: Sequence[str], workspace_id: str) -> list[Line]:
    return L.team_links(members, subject.removeprefix("team:"), [workspace_id]) if subject.startswith("team:") else []


async def change(
    mgmt: Management, actor: Actor, workspace_id: str, subject: str, role: str
) -> tuple[WorkspaceGrant, int]:
    """NotFound when the subject has no access here."""
    ws, authority = await _manager(mgmt, actor, workspace_id)
    reads = {
        "grant": (_GRANT_OF, {"ws": workspace_id, "subject": subject}),
        "role": role_read(role),
        **_members_read(subject),
    }

    def decide(at: Locked) -> Decision[WorkspaceGrant]:
        before = _existing(at, ws, subject)
        check_role_row(mgmt.policy, ws.org_id, role, WORKSPACE, "role", at.one("role"))
        scopes = role_scopes(mgmt.policy, WORKSPACE, role, at.one("role")) | _held_role_scopes(mgmt, at, before)
        _check_escalation(authority, actor, subject, scopes, "change", _members(at))
        event = audit(
            actor,
            "orgauthz.workspace-access.changed",
            subject,
            workspace=workspace_id,
            details={"from": before, "to": role},
        )
        decision = Decision(_grant_row(at, ws, subject, role), audits=[event])
        if before != role:
            decision.writes.append(
                store.update(WorkspaceGrant, {"workspace_id": workspace_id, "subject": subject}, role=role)
            )
            decision.change = at.change(
                remove=[L.grant_line(subject, workspace_id, before)], add=[L.grant_line(subject, workspace_id, role)]
            )
        return decision

    return await mgmt.write(ws.org_id, "workspace-access.changed", reads, decide)


async def revoke(mgmt: Management, actor: Actor, workspace_id: str, subject: str) -> int:
    """NotFound when the subject has no access here. The next Check is denied (SPEC §3)."""
    ws, authority = await _manager(mgmt, actor, workspace_id)

    def decide(at: Locked) -> Decision[None]:
        role = _existing(at, ws, subject)
        members = _members(at)
        _check_escalation(authority, actor, subject, _held_role_scopes(mgmt, at, role), "revoke", members)
        return Decision(
            None,
            writes=[store.delete(WorkspaceGrant, workspace_id=workspace_id, subject=subject)],
            audits=[
                audit(
                    actor, "orgauthz.workspace-access.revoked", subject, workspace=workspace_id, details={"role": role}
                )
            ],
            change=at.change(
                remove=[L.grant_line(subject, workspace_id, role), *_team_links(subject, members, workspace_id)]
            ),
        )

    reads = {"grant": (_GRANT_OF, {"ws": workspace_id, "subject": subject}), **_members_read(subject)}
    _, revision = await mgmt.write(ws.org_id, "workspace-access.revoked", reads, decide)
    return revision


async def list_access(
    mgmt: Management, actor: Actor, workspace_id: str, *, page_size: int, after: str
) -> tuple[list[WorkspaceGrant], str]:
    """Ordered by subject. Needs administrate:workspace or see_workspace_users in the workspace."""
    ws = await locate(mgmt, actor, workspace_id)
    await mgmt.require_any(actor, ws.org_id, [("administrate:workspace", ""), ("see_workspace_users", workspace_id)])
    q = select(WorkspaceGrant).where(WorkspaceGrant.workspace_id == workspace_id)
    if after:
        q = q.where(WorkspaceGrant.subject > after)
    rows: list[WorkspaceGrant] = await mgmt.read(
        lambda s: list(s.scalars(q.order_by(WorkspaceGrant.subject).limit(page_size + 1)))
    )
    token = rows[page_size - 1].subject if len(rows) > page_size else ""
    return rows[:page_size], token
