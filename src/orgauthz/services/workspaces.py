"""Workspaces: create, list, read, delete, and the default workspace role (R10, R15, R17, R19).

A workspace is found by its id; an actor outside its organization gets NotFound.
Creating counts the organization's workspaces inside the write, under the global write
lock, so concurrent creates never exceed ``max_workspaces`` (R10).
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, func, select

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.policy import WORKSPACE
from orgauthz.errors import NotFound
from orgauthz.services.context import Actor, Management
from orgauthz.services.roles import check_role
from orgauthz.store.db import Write
from orgauthz.store.models import Organization, Workspace, WorkspaceGrant


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


def _locked_workspace(w: Write, ws: Workspace) -> Workspace:
    """Re-reads the workspace inside the write (it may have been deleted since)."""
    row = w.session.get(Workspace, ws.id)
    if row is None or row.org_id != ws.org_id:
        raise NotFound(f"workspace {ws.id!r} not found")
    return row


async def create_workspace(
    mgmt: Management, actor: Actor, org_id: str, *, workspace_id: str, handle: str, name: str, default_role: str
) -> tuple[Workspace, int]:
    """Needs create:workspace. LimitExceeded at ``max_workspaces``; AlreadyExists for a taken id or handle."""
    await mgmt.require(actor, org_id, "create:workspace")
    workspace_id = workspace_id or f"ws-{secrets.token_hex(8)}"

    def body(w: Write) -> Workspace:
        s = w.session
        org = s.get(Organization, org_id)
        if org is None:
            raise NotFound(f"organization {org_id!r} not found")
        if default_role:
            check_role(s, mgmt.policy, org_id, default_role, WORKSPACE, "default_role")
        count = int(s.scalar(select(func.count()).select_from(Workspace).where(Workspace.org_id == org_id)) or 0)
        rules.check_limit("workspaces", used=count, adding=1, limit=org.max_workspaces)
        ws = Workspace(
            id=workspace_id,
            org_id=org_id,
            handle=handle,
            name=name or handle,
            default_role=default_role or None,
            created_at=w.now,
        )
        s.add(ws)
        s.flush()
        w.change.workspaces_added.append(workspace_id)
        if default_role:
            w.change.add.append(L.default_role_line(workspace_id, default_role))
        Management.audit(
            w,
            actor,
            "orgauthz.workspace.created",
            f"workspace:{workspace_id}",
            workspace=workspace_id,
            details={"handle": handle, "default_role": default_role},
        )
        return ws

    return await mgmt.write(org_id, "workspace.created", body)


async def list_workspaces(
    mgmt: Management, actor: Actor, org_id: str, *, page_size: int, after: str
) -> tuple[list[Workspace], str]:
    """Ordered by handle. Needs read:workspace."""
    await mgmt.require(actor, org_id, "read:workspace")
    q = select(Workspace).where(Workspace.org_id == org_id)
    if after:
        q = q.where(Workspace.handle > after)
    rows: list[Workspace] = await mgmt.read(
        lambda s: list(s.scalars(q.order_by(Workspace.handle).limit(page_size + 1)))
    )
    token = rows[page_size - 1].handle if len(rows) > page_size else ""
    return rows[:page_size], token


async def get_workspace(mgmt: Management, actor: Actor, workspace_id: str) -> Workspace:
    """Needs read:workspace."""
    ws = await find_workspace(mgmt, actor, workspace_id)
    await mgmt.require(actor, ws.org_id, "read:workspace")
    return ws


async def delete_workspace(mgmt: Management, actor: Actor, workspace_id: str) -> int:
    """Needs delete:workspace. Removes every grant of the workspace in the same write (R19)."""
    ws = await find_workspace(mgmt, actor, workspace_id)
    await mgmt.require(actor, ws.org_id, "delete:workspace")

    def body(w: Write) -> None:
        s = w.session
        row = _locked_workspace(w, ws)
        grants = list(
            s.execute(
                select(WorkspaceGrant.subject, WorkspaceGrant.role).where(WorkspaceGrant.workspace_id == workspace_id)
            ).all()
        )
        s.execute(delete(WorkspaceGrant).where(WorkspaceGrant.workspace_id == workspace_id))
        w.change.remove.extend(L.grant_line(sub, workspace_id, role) for sub, role in grants)
        if row.default_role:
            w.change.remove.append(L.default_role_line(workspace_id, row.default_role))
        s.delete(row)
        w.change.workspaces_removed.append(workspace_id)
        Management.audit(
            w,
            actor,
            "orgauthz.workspace.deleted",
            f"workspace:{workspace_id}",
            workspace=workspace_id,
            details={"handle": row.handle, "grants_removed": len(grants)},
        )

    _, revision = await mgmt.write(ws.org_id, "workspace.deleted", body)
    return revision


async def set_default_role(mgmt: Management, actor: Actor, workspace_id: str, role: str) -> tuple[Workspace, int]:
    """Sets the role for "Anyone at <organization>"; "" is No Access (R17).

    Needs update:workspace, or manage_workspace_default_role in this workspace.
    """
    ws = await find_workspace(mgmt, actor, workspace_id)
    await mgmt.require_any(
        actor, ws.org_id, [("update:workspace", ""), ("manage_workspace_default_role", workspace_id)]
    )

    def body(w: Write) -> Workspace:
        row = _locked_workspace(w, ws)
        if role:
            check_role(w.session, mgmt.policy, ws.org_id, role, WORKSPACE, "role")
        before = row.default_role or ""
        if before:
            w.change.remove.append(L.default_role_line(workspace_id, before))
        if role:
            w.change.add.append(L.default_role_line(workspace_id, role))
        row.default_role = role or None
        Management.audit(
            w,
            actor,
            "orgauthz.workspace.default-role-set",
            f"workspace:{workspace_id}",
            workspace=workspace_id,
            details={"from": before, "to": role},
        )
        return row

    return await mgmt.write(ws.org_id, "workspace.default-role-set", body)
