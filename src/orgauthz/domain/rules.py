"""The access rules of SPEC §1 that management writes enforce, as pure functions.

Each takes the facts a write read under the write lock (plain values) and raises the error
the API answers with; none reads the database or the engine, so the services and the
importer (``orgauthz import``) share one definition of each rule, and the tests in
``tests/domain`` hold each rule on its own.
"""

from __future__ import annotations

from typing import Final

from orgauthz.errors import FailedPrecondition, InvalidArgument, LimitExceeded, PermissionDenied

# The built-in organization roles (R1). Their scopes are in policies/roles.yaml (R23).
ADMIN: Final = "Admin"
MEMBER: Final = "Member"


def is_admin(org_role: str | None) -> bool:
    """R2, R8: whether an organization role is the built-in Admin role (None: no member)."""
    return org_role == ADMIN


# -- R3, R8: organization roles ----------------------------------------------------------


def check_role_change(*, actor_role: str | None, before: str, after: str, admins: int) -> None:
    """R8: only Admins make someone an Admin or change an Admin's role. R3: the last Admin
    cannot be demoted. ``actor_role`` is the actor's own organization role (None for a
    service account or a non-member), ``admins`` the organization's count of Admins."""
    if ADMIN in (before, after) and not is_admin(actor_role):
        raise PermissionDenied("only Admins may make someone an Admin or change an Admin's role (R8)")
    if before == ADMIN and after != ADMIN and admins <= 1:
        raise FailedPrecondition("the last Admin of an organization cannot be demoted (R3)")


def check_removal(*, actor_role: str | None, role: str, admins: int, leaving: bool) -> None:
    """R8: removing an Admin needs an Admin (a member may always leave). R3: the last Admin
    can be neither removed nor leave."""
    if not is_admin(role):
        return
    if not leaving and not is_admin(actor_role):
        raise PermissionDenied("only Admins may remove an Admin (R8)")
    if admins <= 1:
        raise FailedPrecondition("the last Admin of an organization cannot be removed or leave (R3)")


def check_invitation_role(*, actor_role: str | None, role: str) -> None:
    """R8: only Admins invite with the Admin role."""
    if is_admin(role) and not is_admin(actor_role):
        raise PermissionDenied("only organization Admins may invite with the Admin role (R8)")


# -- R11: service accounts ---------------------------------------------------------------


def check_service_account_role(field: str, role: str) -> None:
    """R11: a service account holds Member or a custom organization role, never Admin."""
    if is_admin(role):
        raise InvalidArgument(field, "service accounts never hold the Admin role (R11)")


# -- R10: plan limits --------------------------------------------------------------------


def check_limit(what: str, *, used: int, adding: int, limit: int) -> None:
    """R10: ``used + adding`` may not exceed ``limit``. Members count with pending
    invitations (``what`` says so in its own words)."""
    if adding > 0 and used + adding > limit:
        if adding == 1 or used >= limit:
            raise LimitExceeded(f"the organization has reached its limit of {limit} {what}")
        raise LimitExceeded(f"adding {adding} more would exceed the organization's limit of {limit} {what}")


SEATS: Final = "members (members plus pending invitations count)"


# -- R22: custom roles -------------------------------------------------------------------


def check_inherits(field: str, *, inherits: str, level: str, builtin_levels: dict[str, str]) -> None:
    """R22: a custom role inherits nothing or a built-in role of its own level, never Admin
    (Admin has every scope; a role inheriting it would be an Admin by another name).
    ``builtin_levels`` maps each built-in role to its level."""
    if inherits and (builtin_levels.get(inherits) != level or is_admin(inherits)):
        raise InvalidArgument(field, f"must be a built-in {level} role other than Admin")


def check_custom_role_id(field: str, role_id: str, builtin_levels: dict[str, str]) -> None:
    """R22: a custom role may not take a built-in role's name."""
    if role_id in builtin_levels:
        raise InvalidArgument(field, "must not be a built-in role name")
