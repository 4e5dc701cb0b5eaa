"""Members: list, change organization role, remove, leave (R1, R3, R4, R8).

- Making someone Admin, or changing or removing an Admin, needs the actor to be an
  Admin (R8), whatever custom permissions it holds.
- The last Admin can be neither demoted nor removed, and cannot leave (R3).
- Removing a member deletes its workspace grants in the same write, so the next Check
  anywhere in the organization is denied (R4).

The Admin count and the actor's own role are read inside the write, under the global
write lock: two concurrent demotions cannot both pass the last-Admin check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.policy import ORGANIZATION
from orgauthz.errors import NotFound, PermissionDenied
from orgauthz.services.access import removal, removal_reads
from orgauthz.services.context import Actor, Management, audit
from orgauthz.services.roles import check_role_row, role_read
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read, as_utc
from orgauthz.store.models import Membership, User


@dataclass(frozen=True)
class MemberView:
    user_id: str
    email: str
    role: str
    created_at: datetime


# What the writes read under the write lock, built once with bindparams.
_MEMBER = (
    select(Membership.org_role, Membership.created_at, User.email)
    .join(User, User.id == Membership.user_id)
    .where(Membership.org_id == bindparam("org"), Membership.user_id == bindparam("user"))
)
_ROLE_OF = select(Membership.org_role).where(
    Membership.org_id == bindparam("org"), Membership.user_id == bindparam("user")
)
_HOLDERS = (
    select(func.count())
    .select_from(Membership)
    .where(Membership.org_id == bindparam("org"), Membership.org_role == bindparam("role"))
)


def _reads(org_id: str, actor: Actor, user_id: str) -> dict[str, Read]:
    """The member, the actor's own role (R8, R24) and the Owner and Admin counts (R3). Read
    under the lock: two concurrent demotions cannot both pass the last-Owner check."""
    return {
        "member": (_MEMBER, {"org": org_id, "user": user_id}),
        # A service account's role is never Owner or Admin (R11): its id names no membership.
        "actor": (_ROLE_OF, {"org": org_id, "user": actor.id if actor.is_user else ""}),
        "admins": (_HOLDERS, {"org": org_id, "role": rules.ADMIN}),
        "owners": (_HOLDERS, {"org": org_id, "role": rules.OWNER}),
    }


def _count(at: Locked, what: str) -> int:
    return int(at[what][0][0])


def _member(at: Locked, user_id: str) -> Any:
    found = at.one("member")
    if found is None:
        raise NotFound(f"member {user_id!r} not found")
    return found


def _actor_role(at: Locked) -> str | None:
    found = at.one("actor")
    return str(found.org_role) if found is not None else None


async def list_members(
    mgmt: Management, actor: Actor, org_id: str, *, page_size: int, after: str
) -> tuple[list[MemberView], str]:
    """Ordered by user id. Needs read:account_membership."""
    await mgmt.require(actor, org_id, "read:account_membership")
    q = (
        select(Membership.user_id, User.email, Membership.org_role, Membership.created_at)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id)
    )
    if after:
        q = q.where(Membership.user_id > after)
    q = q.order_by(Membership.user_id).limit(page_size + 1)
    rows = await mgmt.read(lambda s: list(s.execute(q).all()))
    members = [MemberView(u, e or "", r, c) for u, e, r, c in rows]
    token = members[page_size - 1].user_id if len(members) > page_size else ""
    return members[:page_size], token


async def change_role(mgmt: Management, actor: Actor, org_id: str, user_id: str, role: str) -> tuple[MemberView, int]:
    """Needs update:account_membership, and Owner or Admin for anything touching Admin (R8),
    Owner for anything touching Owner (R24). FailedPrecondition when it would demote the last
    Owner (R3)."""
    await mgmt.require(actor, org_id, "update:account_membership")
    reads = {**_reads(org_id, actor, user_id), "role": role_read(role)}

    def decide(at: Locked) -> Decision[MemberView]:
        m = _member(at, user_id)
        check_role_row(mgmt.policy, org_id, role, ORGANIZATION, "role", at.one("role"))
        before = m.org_role
        rules.check_role_change(
            actor_role=_actor_role(at),
            before=before,
            after=role,
            admins=_count(at, "admins"),
            owners=_count(at, "owners"),
        )
        subject = f"user:{user_id}"
        decision = Decision(
            MemberView(user_id, m.email or "", role, as_utc(m.created_at)),
            audits=[audit(actor, "orgauthz.member.role-changed", subject, details={"from": before, "to": role})],
        )
        if before != role:
            decision.writes.append(store.update(Membership, {"org_id": org_id, "user_id": user_id}, org_role=role))
            decision.change = at.change(
                remove=L.membership_lines(subject, org_id, before)[:1],
                add=L.membership_lines(subject, org_id, role)[:1],
            )
        return decision

    return await mgmt.write(org_id, "member.role-changed", reads, decide)


async def remove_member(mgmt: Management, actor: Actor, org_id: str, user_id: str) -> int:
    """Removes the member and all its workspace access at once (R4).

    Needs delete:account_membership, unless the actor is leaving (removing itself).
    FailedPrecondition for the last Owner (R3); removing an Admin needs an Owner or Admin (R8),
    removing an Owner needs an Owner (R24).
    """
    leaving = actor.subject == f"user:{user_id}"
    if leaving:
        await mgmt.require_member(actor, org_id)
    else:
        await mgmt.require(actor, org_id, "delete:account_membership")

    subject = f"user:{user_id}"
    reads = {**_reads(org_id, actor, user_id), **removal_reads(org_id, subject)}

    def decide(at: Locked) -> Decision[None]:
        m = _member(at, user_id)
        rules.check_removal(
            actor_role=_actor_role(at),
            role=m.org_role,
            admins=_count(at, "admins"),
            owners=_count(at, "owners"),
            leaving=leaving,
        )
        writes, lines = removal(mgmt.policy, at, org_id, subject, m.org_role)
        event = "orgauthz.member.left" if leaving else "orgauthz.member.removed"
        return Decision(
            None,
            writes=[*writes, store.delete(Membership, org_id=org_id, user_id=user_id)],
            audits=[audit(actor, event, subject, details={"role": m.org_role, "grants_removed": len(at["grants"])})],
            change=at.change(remove=lines),
        )

    _, revision = await mgmt.write(org_id, "member.removed", reads, decide)
    return revision


async def leave_organization(mgmt: Management, actor: Actor, org_id: str) -> int:
    """The actor leaves the organization: :func:`remove_member` of itself (R4; audit event
    ``orgauthz.member.left``). NotFound outside the organization; PermissionDenied for a
    service account (it is deleted, not left); FailedPrecondition for the last Owner or Admin (R3)."""
    await mgmt.require_member(actor, org_id)
    if not actor.is_user:
        raise PermissionDenied("a service account cannot leave its organization; delete it instead")
    return await remove_member(mgmt, actor, org_id, actor.id)
