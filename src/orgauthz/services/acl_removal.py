"""What removing a member, service account, team or workspace does to object ACLs (R26).

An ACL entry names an actor of the organization; when the actor goes (R4, R13, R25) its
entries go in the same write, with their lines (:func:`orgauthz.domain.lines.entry_lines`),
and the ACLs that held them take the write's revision. Deleting a workspace removes its ACLs
and work pool links with every line they had (R19).
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from orgauthz.domain import lines as L
from orgauthz.domain.lines import AclEntry, Line
from orgauthz.domain.policy import PolicySet
from orgauthz.store import base as store
from orgauthz.store.base import Locked, Read, Write
from orgauthz.store.models import AclEntry as AclEntryRow
from orgauthz.store.models import DeploymentPool, ObjectAcl

_NAMING = select(AclEntryRow.workspace_id, AclEntryRow.object, AclEntryRow.level, AclEntryRow.is_grant).where(
    AclEntryRow.org_id == bindparam("org"), AclEntryRow.actor == bindparam("actor")
)
_WS_ACLS = select(ObjectAcl.object).where(ObjectAcl.workspace_id == bindparam("ws"))
_WS_ENTRIES = select(AclEntryRow.object, AclEntryRow.actor, AclEntryRow.level, AclEntryRow.is_grant).where(
    AclEntryRow.workspace_id == bindparam("ws")
)
_WS_POOLS = select(DeploymentPool.deployment_id, DeploymentPool.pool_id).where(
    DeploymentPool.workspace_id == bindparam("ws")
)


def naming_reads(org_id: str, actor: str) -> dict[str, Read]:
    """The reads :func:`entries_removal` needs: the ACL entries naming ``actor``."""
    return {"acl_named": (_NAMING, {"org": org_id, "actor": actor})}


def entries_removal(policy: PolicySet, at: Locked, org_id: str, actor: str) -> tuple[list[Write], list[Line]]:
    """Deleting every ACL entry naming ``actor`` in the organization, and their lines."""
    rows = at["acl_named"]
    lines: list[Line] = []
    for r in rows:
        kind = policy.object_kinds[str(r.object).partition(":")[0]]
        entry = AclEntry(actor, str(r.level), bool(r.is_grant))
        lines += L.entry_lines(kind, org_id, str(r.workspace_id), str(r.object), entry)
    if not rows:
        return [], []
    writes: list[Write] = [store.delete(AclEntryRow, org_id=org_id, actor=actor)]
    writes += [
        store.update(
            ObjectAcl, {"workspace_id": r.workspace_id, "object": r.object}, revision=at.revision, updated_at=at.now
        )
        for r in rows
    ]
    return writes, lines


def workspace_reads(workspace_id: str) -> dict[str, Read]:
    """The reads :func:`workspace_removal` needs: the workspace's ACLs, entries and work pools."""
    return {
        "ws_acls": (_WS_ACLS, {"ws": workspace_id}),
        "ws_entries": (_WS_ENTRIES, {"ws": workspace_id}),
        "ws_pools": (_WS_POOLS, {"ws": workspace_id}),
    }


def workspace_removal(policy: PolicySet, at: Locked, org_id: str, workspace_id: str) -> tuple[list[Write], list[Line]]:
    """Deleting the workspace's ACLs and work pool links (children first), and every line they had (R19)."""
    acls: dict[tuple[str, str], list[AclEntry]] = {(workspace_id, str(r.object)): [] for r in at["ws_acls"]}
    for r in at["ws_entries"]:
        acls[(workspace_id, str(r.object))].append(AclEntry(str(r.actor), str(r.level), bool(r.is_grant)))
    pools = {(workspace_id, f"deployment:{r.deployment_id}"): f"work_pool:{r.pool_id}" for r in at["ws_pools"]}
    lines: list[Line] = []
    for ws, obj in sorted({*acls, *pools}):
        lines += L.object_lines(policy, org_id, ws, obj, acls, pools)
    writes = [
        store.delete(AclEntryRow, workspace_id=workspace_id),
        store.delete(ObjectAcl, workspace_id=workspace_id),
        store.delete(DeploymentPool, workspace_id=workspace_id),
    ]
    return writes, lines
