"""Workspace access: grant, change, revoke and list workspace roles (R16).

Only organization Admins (``update:workspace``) and the workspace's own Owners
(``manage_workspace_users`` in that workspace) may change access. The subject must be a
member or a service account of the workspace's organization, checked inside the write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, and_, bindparam, delete, exists, insert, select, update

from orgauthz.domain import lines as L
from orgauthz.domain.policy import WORKSPACE
from orgauthz.errors import AlreadyExists, FailedPrecondition, NotFound
from orgauthz.services.context import Actor, Management
from orgauthz.services.roles import check_role_found
from orgauthz.services.workspaces import find_workspace
from orgauthz.store.db import Write
from orgauthz.store.models import CustomRole, Membership, ServiceAccount, Workspace, WorkspaceGrant

_MANAGE = "manage_workspace_users"


@dataclass(frozen=True)
class _Ws:
    id: str
    org_id: str


async def _authorized(mgmt: Management, actor: Actor, workspace_id: str, scope: str) -> _Ws:
    """The workspace's organization from the engine's index (no database read on the write
    path; the write re-checks the workspace under its lock), else from the store."""
    org_id = mgmt.engine.workspace_org.get(workspace_id)
    if org_id is None:
        org_id = (await find_workspace(mgmt, actor, workspace_id)).org_id
    else:
        try:
            await mgmt.require_member(actor, org_id)
        except NotFound:
            raise NotFound(f"workspace {workspace_id!r} not found") from None
    await mgmt.require_any(actor, org_id, [("update:workspace", ""), (scope, workspace_id)])
    return _Ws(workspace_id, org_id)


# The statements of grant, change and revoke, built once with bindparams: a write then does
# no SQLAlchemy construction or compilation of its own (see Database.write).
_GRANTS = cast(Table, WorkspaceGrant.__table__)
_WS_EXISTS = exists().where(Workspace.id == bindparam("ws"))
_HELD = exists().where(WorkspaceGrant.workspace_id == bindparam("ws"), WorkspaceGrant.subject == bindparam("subject"))
# The custom role named by the request, if any: its organization and level.
_CUSTOM = (
    select(CustomRole.org_id).where(CustomRole.id == bindparam("role")).scalar_subquery(),
    select(CustomRole.level).where(CustomRole.id == bindparam("role")).scalar_subquery(),
)
# Whether the workspace exists, the subject is in the organization, and already has a role.
_GRANT_CHECKS = {
    "user": select(
        _WS_EXISTS,
        exists().where(Membership.org_id == bindparam("org"), Membership.user_id == bindparam("ident")),
        _HELD,
        *_CUSTOM,
    ),
    "service_account": select(
        _WS_EXISTS,
        exists().where(ServiceAccount.id == bindparam("ident"), ServiceAccount.org_id == bindparam("org")),
        _HELD,
        *_CUSTOM,
    ),
}
# The workspace (one row if it exists), the subject's role there (None: no grant) and the
# custom role named by the request.
_GRANT_OF = (
    select(Workspace.id, WorkspaceGrant.role, *_CUSTOM)
    .outerjoin(
        WorkspaceGrant,
        and_(WorkspaceGrant.workspace_id == Workspace.id, WorkspaceGrant.subject == bindparam("subject")),
    )
    .where(Workspace.id == bindparam("ws"))
)
# (an UPDATE's own bindparams may not be named after its columns)
_ONE_GRANT = and_(_GRANTS.c.workspace_id == bindparam("ws"), _GRANTS.c.subject == bindparam("who"))
_INSERT_GRANT = insert(_GRANTS).inline()
_SET_ROLE = update(_GRANTS).where(_ONE_GRANT).values(role=bindparam("new_role"))
_DELETE_GRANT = delete(_GRANTS).where(_ONE_GRANT)


def _existing(w: Write, ws: _Ws, subject: str) -> str:
    """The subject's role in the workspace, from the write's ``_GRANT_OF`` read."""
    if not w.read:
        raise NotFound(f"workspace {ws.id!r} not found")
    role: str | None = w.read[0][1]
    if role is None:
        raise NotFound(f"{subject} has no access to workspace {ws.id!r}")
    return role


def _grant_row(w: Write, ws: _Ws, subject: str, role: str) -> WorkspaceGrant:
    """The grant as it stands after the write (for the answer; not tracked by the session)."""
    return WorkspaceGrant(workspace_id=ws.id, subject=subject, org_id=ws.org_id, role=role, created_at=w.now)


def remove_from_organization(w: Write, org_id: str, subject: str, org_role: str) -> int:
    """Deletes every workspace grant of ``subject`` in the organization and queues the
    removal of its membership and grant lines, so its next Check anywhere there is denied
    (R4, R13). Returns how many grants were removed; the caller deletes the member row."""
    s = w.session
    where = (WorkspaceGrant.org_id == org_id, WorkspaceGrant.subject == subject)
    grants = list(s.execute(select(WorkspaceGrant.workspace_id, WorkspaceGrant.role).where(*where)).all())
    s.execute(delete(WorkspaceGrant).where(*where))
    w.change.remove.extend(L.membership_lines(subject, org_id, org_role))
    w.change.remove.extend(L.grant_line(subject, ws, role) for ws, role in grants)
    return len(grants)


async def grant(
    mgmt: Management, actor: Actor, workspace_id: str, subject: str, role: str
) -> tuple[WorkspaceGrant, int]:
    """AlreadyExists when the subject already has a role here (use change);
    FailedPrecondition when it is not in the organization (R16)."""
    ws = await _authorized(mgmt, actor, workspace_id, _MANAGE)

    # The workspace, the subject's place in the organization and an earlier grant: one
    # statement, read under the write lock with the revision (one round trip).
    kind, _, ident = subject.partition(":")
    checks = _GRANT_CHECKS["user" if kind == "user" else "service_account"]
    read = (checks, {"ws": workspace_id, "subject": subject, "org": ws.org_id, "ident": ident, "role": role})

    def body(w: Write) -> WorkspaceGrant:
        found, in_org, held, custom_org, custom_level = w.read[0]
        if not found:
            raise NotFound(f"workspace {workspace_id!r} not found")
        check_role_found(mgmt.policy, ws.org_id, role, WORKSPACE, "role", (custom_org, custom_level))
        if not in_org:
            raise FailedPrecondition(f"{subject} is not a member or service account of the organization (R16)")
        if held:
            raise AlreadyExists(f"{subject} already has access to workspace {workspace_id!r}")
        row = _grant_row(w, ws, subject, role)
        w.later(
            _INSERT_GRANT,
            {"workspace_id": workspace_id, "subject": subject, "org_id": ws.org_id, "role": role, "created_at": w.now},
        )
        w.change.add.append(L.grant_line(subject, workspace_id, role))
        Management.audit(
            w, actor, "orgauthz.workspace-access.granted", subject, workspace=workspace_id, details={"role": role}
        )
        return row

    return await mgmt.write(ws.org_id, "workspace-access.granted", body, read=read, on_loop=True)


async def change(
    mgmt: Management, actor: Actor, workspace_id: str, subject: str, role: str
) -> tuple[WorkspaceGrant, int]:
    """NotFound when the subject has no access here."""
    ws = await _authorized(mgmt, actor, workspace_id, _MANAGE)

    def body(w: Write) -> WorkspaceGrant:
        before = _existing(w, ws, subject)
        check_role_found(mgmt.policy, ws.org_id, role, WORKSPACE, "role", (w.read[0][2], w.read[0][3]))
        if before != role:
            w.change.remove.append(L.grant_line(subject, workspace_id, before))
            w.change.add.append(L.grant_line(subject, workspace_id, role))
            w.later(_SET_ROLE, {"ws": workspace_id, "who": subject, "new_role": role})
        Management.audit(
            w,
            actor,
            "orgauthz.workspace-access.changed",
            subject,
            workspace=workspace_id,
            details={"from": before, "to": role},
        )
        return _grant_row(w, ws, subject, role)

    read = (_GRANT_OF, {"ws": workspace_id, "subject": subject, "role": role})
    return await mgmt.write(ws.org_id, "workspace-access.changed", body, read=read, on_loop=True)


async def revoke(mgmt: Management, actor: Actor, workspace_id: str, subject: str) -> int:
    """NotFound when the subject has no access here. The next Check is denied (SPEC §3)."""
    ws = await _authorized(mgmt, actor, workspace_id, _MANAGE)

    def body(w: Write) -> None:
        role = _existing(w, ws, subject)
        w.change.remove.append(L.grant_line(subject, workspace_id, role))
        w.later(_DELETE_GRANT, {"ws": workspace_id, "who": subject})
        Management.audit(
            w, actor, "orgauthz.workspace-access.revoked", subject, workspace=workspace_id, details={"role": role}
        )

    read = (_GRANT_OF, {"ws": workspace_id, "subject": subject, "role": ""})
    _, revision = await mgmt.write(ws.org_id, "workspace-access.revoked", body, read=read, on_loop=True)
    return revision


async def list_access(
    mgmt: Management, actor: Actor, workspace_id: str, *, page_size: int, after: str
) -> tuple[list[WorkspaceGrant], str]:
    """Ordered by subject. Needs update:workspace or see_workspace_users in the workspace."""
    await _authorized(mgmt, actor, workspace_id, "see_workspace_users")
    q = select(WorkspaceGrant).where(WorkspaceGrant.workspace_id == workspace_id)
    if after:
        q = q.where(WorkspaceGrant.subject > after)
    rows: list[WorkspaceGrant] = await mgmt.read(
        lambda s: list(s.scalars(q.order_by(WorkspaceGrant.subject).limit(page_size + 1)))
    )
    token = rows[page_size - 1].subject if len(rows) > page_size else ""
    return rows[:page_size], token
