"""Organizations: create with the first Admin, read, update plan limits (R1, R3, R10).

Creating an organization is a platform operation: the authenticated caller may do it for
a user actor or with no actor at all (recorded as ``platform``), never for a service
account. Reading needs ``read:account``, changing limits ``update:account``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TypeVar

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.errors import AlreadyExists, NotFound, PermissionDenied
from orgauthz.services.context import Actor, Management
from orgauthz.store.db import Write
from orgauthz.store.importer import DEFAULT_LIMITS
from orgauthz.store.models import Membership, Organization, User

PLATFORM = Actor(subject="platform")
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Plan limits; 0 means "the default" on create and "unchanged" on update."""

    members: int = 0
    service_accounts: int = 0
    workspaces: int = 0


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
    """Creates the organization with ``admin_user_id`` as its Admin; returns it and the revision.

    Raises PermissionDenied for a service account actor, AlreadyExists when the id or
    handle is taken.
    """
    if actor is not None and not actor.is_user:
        raise PermissionDenied("service accounts may not create organizations")
    org_id = org_id or f"org-{secrets.token_hex(8)}"

    def body(w: Write) -> Organization:
        s = w.session
        if s.get(Organization, org_id) is not None:
            raise AlreadyExists(f"organization {org_id!r} already exists")
        org = Organization(
            id=org_id,
            handle=handle,
            name=name,
            revision=0,
            created_at=w.now,
            max_members=limits.members or DEFAULT_LIMITS["members"],
            max_service_accounts=limits.service_accounts or DEFAULT_LIMITS["service_accounts"],
            max_workspaces=limits.workspaces or DEFAULT_LIMITS["workspaces"],
        )
        s.add(org)
        user = s.get(User, admin_user_id)
        if user is None:
            s.add(User(id=admin_user_id, email=admin_email or None, created_at=w.now))
        elif admin_email and not user.email:
            user.email = admin_email
        s.flush()
        s.add(Membership(org_id=org_id, user_id=admin_user_id, org_role=rules.ADMIN, created_at=w.now))
        w.change.add.extend(L.membership_lines(f"user:{admin_user_id}", org_id, rules.ADMIN))
        Management.audit(
            w,
            actor or PLATFORM,
            "orgauthz.organization.created",
            f"organization:{org_id}",
            details={"handle": handle, "admin": f"user:{admin_user_id}"},
        )
        return org

    org, revision = await mgmt.write(org_id, "organization.created", body)
    org.revision = revision
    return org, revision


async def get_organization(mgmt: Management, actor: Actor, org_id: str) -> Organization:
    """Needs ``read:account``; NotFound outside the organization."""
    await mgmt.require(actor, org_id, "read:account")
    org: Organization | None = await mgmt.read(lambda s: s.get(Organization, org_id))
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    return org


async def update_limits(mgmt: Management, actor: Actor, org_id: str, limits: Limits) -> tuple[Organization, int]:
    """Sets each non-zero limit. Needs ``update:account``. Lowering a limit below current
    use is allowed: it only refuses further additions."""
    await mgmt.require(actor, org_id, "update:account")

    def body(w: Write) -> Organization:
        org = w.session.get(Organization, org_id)
        if org is None:
            raise NotFound(f"organization {org_id!r} not found")
        old = {
            "members": org.max_members,
            "service_accounts": org.max_service_accounts,
            "workspaces": org.max_workspaces,
        }
        org.max_members = limits.members or org.max_members
        org.max_service_accounts = limits.service_accounts or org.max_service_accounts
        org.max_workspaces = limits.workspaces or org.max_workspaces
        new = {
            "members": org.max_members,
            "service_accounts": org.max_service_accounts,
            "workspaces": org.max_workspaces,
        }
        Management.audit(
            w, actor, "orgauthz.organization.limits-updated", f"organization:{org_id}", details={"from": old, "to": new}
        )
        return org

    org, revision = await mgmt.write(org_id, "organization.limits-updated", body)
    org.revision = revision
    return org, revision
