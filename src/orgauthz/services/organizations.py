"""Organizations: create, read, rename, change plan limits, list the actor's own (R1, R3, R10).

Creating an organization is a platform operation: the authenticated caller may do it for
a user actor or with no actor at all (recorded as ``platform``), never for a service
account. Reading needs ``read:account``, renaming and changing limits ``update:account``.
Listing the actor's own organizations needs nothing more than being the actor.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.errors import AlreadyExists, NotFound, PermissionDenied
from orgauthz.services.context import Actor, Management, audit
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read, as_utc
from orgauthz.store.importer import DEFAULT_LIMITS
from orgauthz.store.models import Membership, Organization, ServiceAccount, User

PLATFORM = Actor(subject="platform")


@dataclass(frozen=True)
class Limits:
    """Plan limits; 0 means "the default" on create and "unchanged" on update."""

    members: int = 0
    service_accounts: int = 0
    workspaces: int = 0
    teams: int = 0


# What the writes read under the write lock, built once with bindparams.
_ORG = select(
    Organization.id,
    Organization.handle,
    Organization.name,
    Organization.max_members,
    Organization.max_service_accounts,
    Organization.max_workspaces,
    Organization.max_teams,
    Organization.created_at,
).where(Organization.id == bindparam("org"))
_USER = select(User.email).where(User.id == bindparam("user"))


async def create_organization(
    mgmt: Management,
    actor: Actor | None,
    *,
    org_id: str,
    handle: str,
    name: str,
    admin_user_id: str,
    admin_email: str,
    limits: Limits,
) -> tuple[Organization, int]:
    """Creates the organization with ``admin_user_id`` as its first Owner (R3); returns it and the revision.

    Raises PermissionDenied for a service account actor, AlreadyExists when the id or
    handle is taken (the handle by the store's uniqueness violation).
    """
    if actor is not None and not actor.is_user:
        raise PermissionDenied("service accounts may not create organizations")
    org_id = org_id or f"org-{secrets.token_hex(8)}"
    reads: dict[str, Read] = {"org": (_ORG, {"org": org_id}), "user": (_USER, {"user": admin_user_id})}

    def decide(at: Locked) -> Decision[Organization]:
        if at.one("org") is not None:
            raise AlreadyExists(f"organization {org_id!r} already exists")
        row = {
            "id": org_id,
            "handle": handle,
            "name": name,
            "revision": 0,  # set to this write's revision by the store's bookkeeping
            "created_at": at.now,
            "max_members": limits.members or DEFAULT_LIMITS["members"],
            "max_service_accounts": limits.service_accounts or DEFAULT_LIMITS["service_accounts"],
            "max_workspaces": limits.workspaces or DEFAULT_LIMITS["workspaces"],
            "max_teams": limits.teams or DEFAULT_LIMITS["teams"],
        }
        # Parents first: the membership references both the organization and the user.
        writes = [store.insert(Organization, row)]
        user = at.one("user")
        if user is None:
            writes.append(store.insert(User, {"id": admin_user_id, "email": admin_email or None, "created_at": at.now}))
        elif admin_email and not user.email:
            writes.append(store.update(User, {"id": admin_user_id}, email=admin_email))
        member = {"org_id": org_id, "user_id": admin_user_id, "org_role": rules.OWNER, "created_at": at.now}
        writes.append(store.insert(Membership, member))
        event = audit(
            actor or PLATFORM,
            "orgauthz.organization.created",
            f"organization:{org_id}",
            details={"handle": handle, "admin": f"user:{admin_user_id}"},
        )
        return Decision(
            Organization(**{**row, "revision": at.revision}),
            writes=writes,
            audits=[event],
            change=at.change(add=L.membership_lines(f"user:{admin_user_id}", org_id, rules.OWNER)),
        )

    return await mgmt.write(org_id, "organization.created", reads, decide)


async def get_organization(mgmt: Management, actor: Actor, org_id: str) -> Organization:
    """Needs ``read:account``; NotFound outside the organization."""
    await mgmt.require(actor, org_id, "read:account")
    org: Organization | None = await mgmt.read(lambda s: s.get(Organization, org_id))
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    return org


def _updated(found: Any, org_id: str, revision: int, **changed: Any) -> Organization:
    """The organization as it stands after a write: ``found`` (read under the lock) with ``changed``."""
    row = {
        "id": org_id,
        "handle": found.handle,
        "name": found.name,
        "revision": revision,
        "created_at": as_utc(found.created_at),
        "max_members": found.max_members,
        "max_service_accounts": found.max_service_accounts,
        "max_workspaces": found.max_workspaces,
        "max_teams": found.max_teams,
    }
    return Organization(**{**row, **changed})


async def update_organization(mgmt: Management, actor: Actor, org_id: str, *, name: str) -> tuple[Organization, int]:
    """Renames the organization (R1); returns it and the revision. Needs ``update:account``;
    NotFound outside the organization. The audit event says the name before and after."""
    await mgmt.require(actor, org_id, "update:account")
    reads: dict[str, Read] = {"org": (_ORG, {"org": org_id})}

    def decide(at: Locked) -> Decision[Organization]:
        found = at.one("org")
        if found is None:
            raise NotFound(f"organization {org_id!r} not found")
        event = audit(
            actor,
            "orgauthz.organization.updated",
            f"organization:{org_id}",
            details={"from": {"name": found.name}, "to": {"name": name}},
        )
        decision = Decision(_updated(found, org_id, at.revision, name=name), audits=[event])
        if name != found.name:
            decision.writes.append(store.update(Organization, {"id": org_id}, name=name))
        return decision

    return await mgmt.write(org_id, "organization.updated", reads, decide)


async def list_my_organizations(
    mgmt: Management, actor: Actor, *, page_size: int, after: str
) -> tuple[list[tuple[Organization, str]], str]:
    """The organizations the actor belongs to, with its organization role in each, ordered by
    id, after ``after`` (Prefect's ``me/organizations``). A service account belongs to its
    own organization only. Returns the page and the id to resume after ("" at the end)."""
    if actor.is_user:
        q = (
            select(Organization, Membership.org_role)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.user_id == actor.id)
        )
    else:
        q = (
            select(Organization, ServiceAccount.org_role)
            .join(ServiceAccount, ServiceAccount.org_id == Organization.id)
            .where(ServiceAccount.id == actor.id)
        )
    if after:
        q = q.where(Organization.id > after)
    q = q.order_by(Organization.id).limit(page_size + 1)

    def read(s: Session) -> list[tuple[Organization, str]]:
        return [(org, str(role)) for org, role in s.execute(q).all()]

    rows = await mgmt.read(read)
    token = rows[page_size - 1][0].id if len(rows) > page_size else ""
    return rows[:page_size], token


async def update_limits(mgmt: Management, actor: Actor, org_id: str, limits: Limits) -> tuple[Organization, int]:
    """Sets each non-zero limit. Needs ``update:account``. Lowering a limit below current
    use is allowed: it only refuses further additions."""
    await mgmt.require(actor, org_id, "update:account")
    reads: dict[str, Read] = {"org": (_ORG, {"org": org_id})}

    def decide(at: Locked) -> Decision[Organization]:
        found = at.one("org")
        if found is None:
            raise NotFound(f"organization {org_id!r} not found")
        old = {
            "members": found.max_members,
            "service_accounts": found.max_service_accounts,
            "workspaces": found.max_workspaces,
            "teams": found.max_teams,
        }
        new = {
            "members": limits.members or found.max_members,
            "service_accounts": limits.service_accounts or found.max_service_accounts,
            "workspaces": limits.workspaces or found.max_workspaces,
            "teams": limits.teams or found.max_teams,
        }
        org = _updated(
            found,
            org_id,
            at.revision,
            max_members=new["members"],
            max_service_accounts=new["service_accounts"],
            max_workspaces=new["workspaces"],
            max_teams=new["teams"],
        )
        decision = Decision(
            org,
            audits=[
                audit(
                    actor,
                    "orgauthz.organization.limits-updated",
                    f"organization:{org_id}",
                    details={"from": old, "to": new},
                )
            ],
        )
        if new != old:
            decision.writes.append(
                store.update(
                    Organization,
                    {"id": org_id},
                    max_members=new["members"],
                    max_service_accounts=new["service_accounts"],
                    max_workspaces=new["workspaces"],
                    max_teams=new["teams"],
                )
            )
        return decision

    return await mgmt.write(org_id, "organization.limits-updated", reads, decide)
