"""Reads the engine needs: the start-up index, one organization's facts, the change feed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import func, select

from orgauthz.domain.changes import ChangeSet
from orgauthz.domain.lines import AclEntry, OrgSnapshot
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, RoleDef
from orgauthz.store.base import Store
from orgauthz.store.models import AclEntry as AclEntryRow
from orgauthz.store.models import (
    Change,
    CustomRole,
    DeploymentPool,
    Membership,
    ObjectAcl,
    Organization,
    ServiceAccount,
    TeamMember,
    Workspace,
    WorkspaceGrant,
)


@dataclass
class Index:
    """What every replica keeps for all organizations: who owns which workspace."""

    revision: int
    workspace_org: dict[str, str]
    org_revision: dict[str, int]


@dataclass
class FeedEntry:
    revision: int
    change: ChangeSet


def head_revision(db: Store) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.max(Change.revision))) or 0)


def load_index(db: Store) -> Index:
    with db.read() as s:
        rev = int(s.scalar(select(func.max(Change.revision))) or 0)
        ws = dict(s.execute(select(Workspace.id, Workspace.org_id)).all())
        orgs = {o: int(r) for o, r in s.execute(select(Organization.id, Organization.revision))}
    return Index(revision=rev, workspace_org=ws, org_revision=orgs)


def custom_role_def(row: CustomRole) -> RoleDef:
    return RoleDef(
        name=row.id,
        level=ORGANIZATION if row.level == ORGANIZATION else WORKSPACE,
        description=row.description or row.name,
        scopes=tuple(row.scopes or ()),
        inherits=row.inherits or "",
        builtin=False,
    )


def load_org(db: Store, org_id: str) -> tuple[OrgSnapshot, int] | None:
    """The organization's facts and its own revision, read at one consistent revision.

    Returns None when the organization does not exist.
    """
    with db.read() as s:
        org_rev = s.scalar(select(Organization.revision).where(Organization.id == org_id))
        if org_rev is None:
            return None
        rev = int(s.scalar(select(func.max(Change.revision))) or 0)
        snap = OrgSnapshot(org_id=org_id, revision=rev)
        # Plain driver rows: the largest organization of ``large`` has 168,855 grants.
        rows = db.driver_rows
        snap.workspaces = dict(rows(s, select(Workspace.id, Workspace.default_role).where(Workspace.org_id == org_id)))
        snap.members = dict(rows(s, select(Membership.user_id, Membership.org_role).where(Membership.org_id == org_id)))
        snap.service_accounts = dict(
            rows(s, select(ServiceAccount.id, ServiceAccount.org_role).where(ServiceAccount.org_id == org_id))
        )
        grants = select(WorkspaceGrant.workspace_id, WorkspaceGrant.subject, WorkspaceGrant.role)
        snap.grants = cast(list[tuple[str, str, str]], rows(s, grants.where(WorkspaceGrant.org_id == org_id)))
        snap.custom_roles = {
            r.id: custom_role_def(r) for r in s.scalars(select(CustomRole).where(CustomRole.org_id == org_id))
        }
        for team, subject in rows(s, select(TeamMember.team_id, TeamMember.subject).where(TeamMember.org_id == org_id)):
            snap.teams.setdefault(team, []).append(subject)
        for ws, obj in rows(s, select(ObjectAcl.workspace_id, ObjectAcl.object).where(ObjectAcl.org_id == org_id)):
            snap.acls[(ws, obj)] = []
        entries = select(AclEntryRow.workspace_id, AclEntryRow.object, AclEntryRow.actor, AclEntryRow.level)
        for ws, obj, actor, level, grant in rows(
            s, entries.add_columns(AclEntryRow.is_grant).where(AclEntryRow.org_id == org_id)
        ):
            snap.acls[(ws, obj)].append(AclEntry(actor, level, bool(grant)))
        pools = select(DeploymentPool.workspace_id, DeploymentPool.deployment_id, DeploymentPool.pool_id)
        for ws, dep, pool in rows(s, pools.where(DeploymentPool.org_id == org_id)):
            snap.pools[(ws, f"deployment:{dep}")] = f"work_pool:{pool}"
    return snap, int(org_rev)


def changes_since(
    db: Store, after: int, *, upto: int | None = None, org_id: str | None = None, limit: int = 5000
) -> list[FeedEntry]:
    """Committed changes with ``after < revision [<= upto]``, oldest first."""
    q = select(Change).where(Change.revision > after).order_by(Change.revision).limit(limit)
    if upto is not None:
        q = q.where(Change.revision <= upto)
    if org_id is not None:
        q = q.where(Change.org_id == org_id)
    with db.read() as s:
        return [
            FeedEntry(revision=int(c.revision), change=ChangeSet.from_payload(c.org_id, c.kind, c.payload))
            for c in s.scalars(q)
        ]


def orgs_of_subject(db: Store, kind: str, ident: str) -> list[str]:
    """Organizations the subject belongs to (member or service account)."""
    with db.read() as s:
        if kind == "user":
            q = select(Membership.org_id).where(Membership.user_id == ident)
        else:
            q = select(ServiceAccount.org_id).where(ServiceAccount.id == ident)
        return sorted(s.scalars(q))
