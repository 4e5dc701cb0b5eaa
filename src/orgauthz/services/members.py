"""Members: list, change organization role, remove (R1, R3, R4, R8).

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

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.policy import ORGANIZATION
from orgauthz.errors import NotFound
from orgauthz.services.access import remove_from_organization
from orgauthz.services.context import Actor, Management
from orgauthz.services.roles import check_role
from orgauthz.store.db import Write
from orgauthz.store.models import Membership, User


@dataclass(frozen=True)
class MemberView:
    user_id: str
    email: str
    role: str
    created_at: datetime


def _role_of(s: Session, org_id: str, actor: Actor) -> str | None:
    """The actor's organization role, read in the write (None: a service account, R11, or
    not a member)."""
    if not actor.is_user:
        return None
    m = s.get(Membership, (org_id, actor.id))
    return m.org_role if m is not None else None


def _admins(s: Session, org_id: str) -> int:
    q = (
        select(func.count())
        .select_from(Membership)
        .where(Membership.org_id == org_id, Membership.org_role == rules.ADMIN)
    )
    return int(s.scalar(q) or 0)


def _member(s: Session, org_id: str, user_id: str) -> Membership:
    m = s.get(Membership, (org_id, user_id))
    if m is None:
        raise NotFound(f"member {user_id!r} not found")
    return m


def _email(s: Session, user_id: str) -> str:
    user = s.get(User, user_id)
    return (user.email or "") if user else ""


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
    """Needs update:account_membership (and Admin for anything touching Admin, R8).

    FailedPrecondition when it would demote the last Admin (R3).
    """
    await mgmt.require(actor, org_id, "update:account_membership")

    def body(w: Write) -> MemberView:
        s = w.session
        m = _member(s, org_id, user_id)
        check_role(s, mgmt.policy, org_id, role, ORGANIZATION, "role")
        before = m.org_role
        rules.check_role_change(
            actor_role=_role_of(s, org_id, actor), before=before, after=role, admins=_admins(s, org_id)
        )
        subject = f"user:{user_id}"
        if before != role:
            w.change.remove.append(L.membership_lines(subject, org_id, before)[0])
            w.change.add.append(L.membership_lines(subject, org_id, role)[0])
            m.org_role = role
        Management.audit(w, actor, "orgauthz.member.role-changed", subject, details={"from": before, "to": role})
        return MemberView(user_id, _email(s, user_id), role, m.created_at)

    return await mgmt.write(org_id, "member.role-changed", body)


async def remove_member(mgmt: Management, actor: Actor, org_id: str, user_id: str) -> int:
    """Removes the member and all its workspace access at once (R4).

    Needs delete:account_membership, unless the actor is leaving (removing itself).
    FailedPrecondition for the last Admin (R3); removing another Admin needs Admin (R8).
    """
    leaving = actor.subject == f"user:{user_id}"
    if leaving:
        await mgmt.require_member(actor, org_id)
    else:
        await mgmt.require(actor, org_id, "delete:account_membership")

    def body(w: Write) -> None:
        s = w.session
        m = _member(s, org_id, user_id)
        if rules.is_admin(m.org_role):
            rules.check_removal(
                actor_role=_role_of(s, org_id, actor), role=m.org_role, admins=_admins(s, org_id), leaving=leaving
            )
        subject = f"user:{user_id}"
        removed = remove_from_organization(w, org_id, subject, m.org_role)
        s.delete(m)
        Management.audit(
            w,
            actor,
            "orgauthz.member.left" if leaving else "orgauthz.member.removed",
            subject,
            details={"role": m.org_role, "grants_removed": removed},
        )

    _, revision = await mgmt.write(org_id, "member.removed", body)
    return revision
