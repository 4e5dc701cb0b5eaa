"""Workspaces: create, list, read, update, delete, and the default workspace role (R10, R15, R17, R19).

A workspace is found by its id; an actor outside its organization gets NotFound.
Creating counts the organization's workspaces inside the write, under the global write
lock, so concurrent creates never exceed ``max_workspaces`` (R10).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, func, literal, or_, select

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.policy import WORKSPACE
from orgauthz.errors import AlreadyExists, NotFound
from orgauthz.services import acl_removal
from orgauthz.services.context import Actor, Management, audit
from orgauthz.services.roles import check_role_row, role_read, role_scopes
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read, as_utc
from orgauthz.store.models import Organization, TeamMember, Workspace, WorkspaceGrant

# What the writes read under the write lock, built once with bindparams.
# The organization's workspace limit and its count of workspaces (R10); no row: no organization.
_ORG_WORKSPACES = select(
    Organization.max_workspaces,
    select(func.count())
    .select_from(Workspace)
    .where(Workspace.org_id == bindparam("org"))
    .scalar_subquery()
    .label("workspaces"),
).where(Organization.id == bindparam("org"))
_WORKSPACE = select(
    Workspace.id,
    Workspace.org_id,
    Workspace.handle,
    Workspace.name,
    Workspace.description,
    Workspace.default_role,
    Workspace.created_at,
).where(Workspace.id == bindparam("ws"))
# Whether an id is taken (in any organization), and which workspace holds a handle in one (R15).
_ID_TAKEN = select(Workspace.id).where(Workspace.id == bindparam("ws"))
_HANDLE_HOLDER = select(Workspace.id).where(
    Workspace.org_id == bindparam("org"), Workspace.handle == bindparam("handle")
)
_GRANTS = select(WorkspaceGrant.subject, WorkspaceGrant.role).where(WorkspaceGrant.workspace_id == bindparam("ws"))
# The members of every team holding a role in the workspace: their team links there go too (R19, R25).
_TEAM_MEMBERS_HERE = select(TeamMember.team_id, TeamMember.subject).where(
    literal("team:") + TeamMember.team_id == WorkspaceGrant.subject, WorkspaceGrant.workspace_id == bindparam("ws")
)


async def find_workspace(mgmt: Management, actor: Actor, workspace_id: str) -> Workspace:
    """The workspace, if the actor belongs to its organization; NotFound otherwise."""
    ws: Workspace | None = await mgmt.read(lambda s: s.get(Workspace, workspace_id))
    if ws is None:
        raise NotFound(f"workspace {workspace_id!r} not found")
    try:
        await mgmt.require_member(actor, ws.org_id)
    except NotFound:
        raise NotFound(f"workspace {workspace_id!r} not found") from None
    return ws


def _workspace_read(workspace_id: str) -> Read:
    return _WORKSPACE, {"ws": workspace_id}


def _locked_workspace(at: Locked, ws: Workspace) -> Any:
    """The workspace as read under the write lock (it may have been deleted since)."""
    row = at.one("workspace")
    if row is None or row.org_id != ws.org_id:
        raise NotFound(f"workspace {ws.id!r} not found")
    return row


def _answer(row: Any, default_role: str | None, **changed: str) -> Workspace:
    """The workspace as it stands after the write (for the answer): ``row`` with
    ``default_role`` and ``changed`` (name, handle, description)."""
    kept = {"handle": row.handle, "name": row.name, "description": row.description or ""}
    return Workspace(
        id=row.id,
        org_id=row.org_id,
        default_role=default_role,
        created_at=as_utc(row.created_at),
        **{**kept, **changed},
    )


def _check_handle_free(at: Locked, handle: str, workspace_id: str) -> None:
    """R15: AlreadyExists naming ``handle`` when another workspace of the organization holds it."""
    holder = at.one("handle")
    if holder is not None and holder.id != workspace_id:
        raise AlreadyExists(f"handle: {handle!r} is taken by another workspace of the organization")


async def create_workspace(
    mgmt: Management,
    actor: Actor,
    org_id: str,
    *,
    workspace_id: str,
    handle: str,
    name: str,
    default_role: str,
    description: str = "",
) -> tuple[Workspace, int]:
    """Needs create:workspace. LimitExceeded at ``max_workspaces``; AlreadyExists naming the
    field for a taken ``id`` (in any organization) or ``handle`` (in this one, R15)."""
    await mgmt.require(actor, org_id, "create:workspace")
    workspace_id = workspace_id or f"ws-{secrets.token_hex(8)}"
    reads: dict[str, Read] = {
        "org": (_ORG_WORKSPACES, {"org": org_id}),
        "id": (_ID_TAKEN, {"ws": workspace_id}),
        "handle": (_HANDLE_HOLDER, {"org": org_id, "handle": handle}),
    }
    if default_role:
        reads["role"] = role_read(default_role)

    def decide(at: Locked) -> Decision[Workspace]:
        org = at.one("org")
        if org is None:
            raise NotFound(f"organization {org_id!r} not found")
        if default_role:
            check_role_row(mgmt.policy, org_id, default_role, WORKSPACE, "default_role", at.one("role"))
        if at.one("id") is not None:
            raise AlreadyExists(f"id: workspace id {workspace_id!r} is taken")
        _check_handle_free(at, handle, workspace_id)
        rules.check_limit("workspaces", used=int(org.workspaces or 0), adding=1, limit=org.max_workspaces)
        row = {
            "id": workspace_id,
            "org_id": org_id,
            "handle": handle,
            "name": name or handle,
            "description": description,
            "default_role": default_role or None,
            "created_at": at.now,
        }
        change = at.change(workspaces_added=[workspace_id])
        if default_role:
            change.add.append(L.default_role_line(workspace_id, default_role))
        return Decision(
            Workspace(**row),
            writes=[store.insert(Workspace, row)],
            audits=[
                audit(
                    actor,
                    "orgauthz.workspace.created",
                    f"workspace:{workspace_id}",
                    workspace=workspace_id,
                    details={"handle": handle, "default_role": default_role},
                )
            ],
            change=change,
        )

    return await mgmt.write(org_id, "workspace.created", reads, decide)


async def list_workspaces(
    mgmt: Management, actor: Actor, org_id: str, *, page_size: int, after: str
) -> tuple[list[Workspace], str]:
    """Ordered by handle. Needs read:workspace; whoever is not an organization Owner or Admin
    sees only the workspaces it can access (R30)."""
    await mgmt.require(actor, org_id, "read:workspace")
    q = select(Workspace).where(Workspace.org_id == org_id)
    if not rules.is_admin(await mgmt.org_role_of(actor, org_id)):
        q = q.where(_accessible(actor))
    if after:
        q = q.where(Workspace.handle > after)
    rows: list[Workspace] = await mgmt.read(
        lambda s: list(s.scalars(q.order_by(Workspace.handle).limit(page_size + 1)))
    )
    token = rows[page_size - 1].handle if len(rows) > page_size else ""
    return rows[:page_size], token


def _accessible(actor: Actor) -> ColumnElement[bool]:
    """R30: the workspaces the actor can access: a grant there, a grant to one of its teams
    (R25), or (users only, R17) a default role."""
    granted = exists().where(WorkspaceGrant.workspace_id == Workspace.id, WorkspaceGrant.subject == actor.subject)
    team_granted = exists().where(
        WorkspaceGrant.workspace_id == Workspace.id,
        WorkspaceGrant.subject == literal("team:") + TeamMember.team_id,
        TeamMember.subject == actor.subject,
    )
    if actor.is_user:
        return or_(granted, team_granted, Workspace.default_role.is_not(None))
    return or_(granted, team_granted)


async def get_workspace(mgmt: Management, actor: Actor, workspace_id: str) -> Workspace:
    """Needs read:workspace; NotFound for a workspace the actor may not see (R30)."""
    ws = await find_workspace(mgmt, actor, workspace_id)
    await mgmt.require(actor, ws.org_id, "read:workspace")
    if not rules.is_admin(await mgmt.org_role_of(actor, ws.org_id)):
        q = select(Workspace.id).where(Workspace.id == workspace_id, _accessible(actor))
        if await mgmt.read(lambda s: s.scalar(q)) is None:
            raise NotFound(f"workspace {workspace_id!r} not found")
    return ws


async def delete_workspace(mgmt: Management, actor: Actor, workspace_id: str) -> int:
    """Needs delete:workspace, or manage_workspace_settings in the workspace (Prefect's "Delete
    the workspace"). Removes every grant of the workspace in the same write (R19)."""
    ws = await find_workspace(mgmt, actor, workspace_id)
    await mgmt.require_any(actor, ws.org_id, [("delete:workspace", ""), ("manage_workspace_settings", workspace_id)])
    reads = {
        "workspace": _workspace_read(workspace_id),
        "grants": (_GRANTS, {"ws": workspace_id}),
        "team_members": (_TEAM_MEMBERS_HERE, {"ws": workspace_id}),
        **acl_removal.workspace_reads(workspace_id),
    }

    def decide(at: Locked) -> Decision[None]:
        row = _locked_workspace(at, ws)
        grants = at["grants"]
        acl_writes, acl_lines = acl_removal.workspace_removal(mgmt.policy, at, ws.org_id, workspace_id)
        change = at.change(
            remove=[
                *(L.grant_line(sub, workspace_id, role) for sub, role in grants),
                *(L.team_link(member, team, workspace_id) for team, member in at["team_members"]),
                *acl_lines,
            ],
            workspaces_removed=[workspace_id],
        )
        if row.default_role:
            change.remove.append(L.default_role_line(workspace_id, row.default_role))
        return Decision(
            None,
            # Children first: the grants reference the workspace.
            writes=[
                *acl_writes,
                store.delete(WorkspaceGrant, workspace_id=workspace_id),
                store.delete(Workspace, id=workspace_id),
            ],
            audits=[
                audit(
                    actor,
                    "orgauthz.workspace.deleted",
                    f"workspace:{workspace_id}",
                    workspace=workspace_id,
                    details={"handle": row.handle, "grants_removed": len(grants)},
                )
            ],
            change=change,
        )

    _, revision = await mgmt.write(ws.org_id, "workspace.deleted", reads, decide)
    return revision


async def set_default_role(mgmt: Management, actor: Actor, workspace_id: str, role: str) -> tuple[Workspace, int]:
    """Sets the role for "Anyone at <organization>"; "" is No Access (R17).

    Needs administrate:workspace, or manage_workspace_users in this workspace; whoever is
    not an organization Owner or Admin may set only a role within its own scopes there (R28).
    """
    ws = await find_workspace(mgmt, actor, workspace_id)
    await mgmt.require_any(actor, ws.org_id, [("administrate:workspace", ""), ("manage_workspace_users", workspace_id)])
    authority = await mgmt.authority(actor, ws.org_id, workspace_id)
    reads = {"workspace": _workspace_read(workspace_id)}
    if role:
        reads["role"] = role_read(role)

    def decide(at: Locked) -> Decision[Workspace]:
        row = _locked_workspace(at, ws)
        if role:
            check_role_row(mgmt.policy, ws.org_id, role, WORKSPACE, "role", at.one("role"))
            rules.check_default_role_scopes(
                actor_is_admin=authority.is_admin,
                actor_scopes=authority.scopes,
                role_scopes=role_scopes(mgmt.policy, WORKSPACE, role, at.one("role")),
            )
        before = row.default_role or ""
        change = at.change()
        if before:
            change.remove.append(L.default_role_line(workspace_id, before))
        if role:
            change.add.append(L.default_role_line(workspace_id, role))
        decision = Decision(
            _answer(row, role or None),
            audits=[
                audit(
                    actor,
                    "orgauthz.workspace.default-role-set",
                    f"workspace:{workspace_id}",
                    workspace=workspace_id,
                    details={"from": before, "to": role},
                )
            ],
            change=change,
        )
        if before != role:
            decision.writes.append(store.update(Workspace, {"id": workspace_id}, default_role=role or None))
        return decision

    return await mgmt.write(ws.org_id, "workspace.default-role-set", reads, decide)


async def update_workspace(
    mgmt: Management, actor: Actor, workspace_id: str, *, name: str, handle: str, description: str | None
) -> tuple[Workspace, int]:
    """Changes the name, handle and description (R15); an empty name or handle and a None
    description keep their value. Returns the workspace and the revision.

    Needs administrate:workspace, or write_workspace_settings in this workspace (changing the
    workspace's settings). NotFound outside the organization; AlreadyExists naming
    ``handle`` when another workspace of the organization holds it.
    """
    ws = await find_workspace(mgmt, actor, workspace_id)
    await mgmt.require_any(
        actor, ws.org_id, [("administrate:workspace", ""), ("write_workspace_settings", workspace_id)]
    )
    reads: dict[str, Read] = {
        "workspace": _workspace_read(workspace_id),
        "handle": (_HANDLE_HOLDER, {"org": ws.org_id, "handle": handle}),
    }

    def decide(at: Locked) -> Decision[Workspace]:
        row = _locked_workspace(at, ws)
        if handle:
            _check_handle_free(at, handle, workspace_id)
        before = {"name": row.name, "handle": row.handle, "description": row.description or ""}
        after = {
            "name": name or before["name"],
            "handle": handle or before["handle"],
            "description": before["description"] if description is None else description,
        }
        decision = Decision(
            _answer(row, row.default_role, **after),
            audits=[
                audit(
                    actor,
                    "orgauthz.workspace.updated",
                    f"workspace:{workspace_id}",
                    workspace=workspace_id,
                    details={"from": before, "to": after},
                )
            ],
        )
        changed = {k: v for k, v in after.items() if v != before[k]}
        if changed:
            decision.writes.append(store.update(Workspace, {"id": workspace_id}, **changed))
        return decision

    return await mgmt.write(ws.org_id, "workspace.updated", reads, decide)
