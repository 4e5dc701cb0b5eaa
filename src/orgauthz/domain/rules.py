"""The access rules of SPEC §1 that management writes enforce, as pure functions.

Each takes the facts a write read under the write lock (plain values) and raises the error
the API answers with; none reads the database or the engine, so the services and the
importer (``orgauthz import``) share one definition of each rule, and the tests in
``tests/domain`` hold each rule on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from orgauthz.errors import FailedPrecondition, InvalidArgument, LimitExceeded, PermissionDenied

# The built-in organization roles (R1). Their scopes are in policies/roles.yaml (R23).
# (``Owner`` is also the name of a built-in *workspace* role: the functions here speak of
# organization roles only.)
OWNER: Final = "Owner"
ADMIN: Final = "Admin"
MEMBER: Final = "Member"
# R24: what an Owner holds beyond an Admin; no other role, built-in or custom, holds it.
OWNERS_ONLY: Final = frozenset({"bypass:sso"})


def is_admin(org_role: str | None) -> bool:
    """R2, R8, R24: whether an organization role can do everything in the organization: an
    Admin, or an Owner (Admin and more). None: a service account or no member."""
    return org_role in (ADMIN, OWNER)


def _protected(owners: int) -> str:
    """R3: the role whose last holder stays. Organizations stored before the Owner role
    existed have no Owner until migrated; their last Admin stays instead."""
    return OWNER if owners > 0 else ADMIN


# -- R3, R8, R24: organization roles -----------------------------------------------------


def check_role_change(*, actor_role: str | None, before: str, after: str, admins: int, owners: int = 0) -> None:
    """R24: only an Owner makes someone an Owner or changes an Owner's role. R8: only Owners
    and Admins make someone an Admin or change an Admin's role. R3: the last Owner (the last
    Admin where there is no Owner) cannot be demoted. ``actor_role`` is the actor's own
    organization role (None for a service account or a non-member); ``admins`` and
    ``owners`` the organization's counts."""
    if OWNER in (before, after) and actor_role != OWNER:
        raise PermissionDenied("only Owners may make someone an Owner or change an Owner's role (R24)")
    if ADMIN in (before, after) and not is_admin(actor_role):
        raise PermissionDenied("only Admins may make someone an Admin or change an Admin's role (R8)")
    kept = _protected(owners)
    if before == kept and after != kept and (owners if kept == OWNER else admins) <= 1:
        raise FailedPrecondition(f"the last {kept} of an organization cannot be demoted (R3)")


def check_removal(*, actor_role: str | None, role: str, admins: int, leaving: bool, owners: int = 0) -> None:
    """R24: removing an Owner needs an Owner; R8: removing an Admin needs an Owner or Admin
    (a member may always leave). R3: the last Owner (the last Admin where there is no Owner)
    can be neither removed nor leave."""
    if not is_admin(role):
        return
    if not leaving and role == OWNER and actor_role != OWNER:
        raise PermissionDenied("only Owners may remove an Owner (R24)")
    if not leaving and not is_admin(actor_role):
        raise PermissionDenied("only Admins may remove an Admin (R8)")
    kept = _protected(owners)
    if role == kept and (owners if kept == OWNER else admins) <= 1:
        raise FailedPrecondition(f"the last {kept} of an organization cannot be removed or leave (R3)")


def check_invitation_role(*, actor_role: str | None, role: str) -> None:
    """R8: only Owners and Admins invite with the Admin role; R24: only Owners with Owner."""
    if role == OWNER and actor_role != OWNER:
        raise PermissionDenied("only organization Owners may invite with the Owner role (R24)")
    if is_admin(role) and not is_admin(actor_role):
        raise PermissionDenied("only organization Admins may invite with the Admin role (R8)")


# -- R16: workspace access --------------------------------------------------------------


def check_grantee(subject: str, *, in_org: bool) -> None:
    """R16: only members and service accounts of the workspace's organization can be given
    a workspace role; someone outside it cannot be."""
    if not in_org:
        raise FailedPrecondition(f"{subject} is not a member or service account of the organization (R16)")


# -- R28: no escalation ------------------------------------------------------------------


def check_no_escalation(
    *,
    actor_is_admin: bool,
    actor_scopes: frozenset[str],
    role_scopes: frozenset[str],
    own_access: bool,
    what: str = "grant",
) -> None:
    """R28: whoever is not an organization Owner or Admin may grant, change or revoke only
    roles whose effective scopes (``role_scopes``, of the role before and after) are all
    scopes it holds itself in that workspace (``actor_scopes``), and may not change its own
    access (``own_access``). Owners and Admins are not limited (R2)."""
    if actor_is_admin:
        return
    if own_access:
        raise PermissionDenied(f"only organization Owners and Admins may {what} their own workspace access (R28)")
    missing = role_scopes - actor_scopes
    if missing:
        raise PermissionDenied(
            f"may not {what} a role holding scopes the actor does not hold here: {', '.join(sorted(missing))} (R28)"
        )


def check_default_role_scopes(
    *, actor_is_admin: bool, actor_scopes: frozenset[str], role_scopes: frozenset[str]
) -> None:
    """R28: the default workspace role may be set only to a role within the setter's own scopes."""
    check_no_escalation(
        actor_is_admin=actor_is_admin, actor_scopes=actor_scopes, role_scopes=role_scopes, own_access=False, what="set"
    )


def check_role_author(actor_role: str | None) -> None:
    """R28: nobody but Owners and Admins defines or changes a custom role."""
    if not is_admin(actor_role):
        raise PermissionDenied("only organization Owners and Admins define or change custom roles (R28)")


# -- R11: service accounts ---------------------------------------------------------------


def check_service_account_role(field: str, role: str) -> None:
    """R11: a service account holds Member or a custom organization role, never Owner or Admin."""
    if is_admin(role):
        raise InvalidArgument(field, f"service accounts never hold the {role} role (R11)")


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


def check_custom_scope(field: str, scope: str) -> None:
    """R24: a custom role never holds what only Owners hold (an Admin could otherwise give it)."""
    if scope in OWNERS_ONLY:
        raise InvalidArgument(field, f"{scope} is the Owner role's alone (R24); a custom role cannot hold it")


def check_inherits(field: str, *, inherits: str, level: str, builtin: frozenset[str]) -> None:
    """R22: a custom role inherits nothing or a built-in role of its own level (``builtin``:
    their names), never Owner or Admin at organization level (they have every scope; a role
    inheriting one would be an Admin by another name)."""
    if inherits and (inherits not in builtin or (level == "organization" and is_admin(inherits))):
        raise InvalidArgument(field, f"must be a built-in {level} role other than Owner and Admin")


def check_custom_role_id(field: str, role_id: str, builtin: frozenset[str]) -> None:
    """R22: a custom role may not take a built-in role's name (``builtin``: of either level)."""
    if role_id in builtin:
        raise InvalidArgument(field, "must not be a built-in role name")


def check_role_unused(role_id: str, uses: Mapping[str, int]) -> None:
    """R22: a custom role in use (``uses``: how many of each kind of reference, by name)
    cannot be deleted."""
    used = [f"{n} {what}" for what, n in uses.items() if n]
    if used:
        raise FailedPrecondition(f"role {role_id!r} is in use ({', '.join(used)}); reassign them first")


# -- R29: users' personal API keys -------------------------------------------------------

USER_KEYS_MAX: Final = 50  # keys one user may hold at once, expired ones included


def check_own_keys(*, actor: str, by_key: bool, user_id: str) -> None:
    """R29: only the user themself manages their keys, asserted as the actor by the caller.
    Another user, a service account, or a key presented as the actor (a key never mints or
    removes keys: a leaked one cannot give itself a successor) is refused."""
    if actor != f"user:{user_id}" or by_key:
        raise PermissionDenied(f"only user {user_id!r}, asserted by the caller, manages their API keys")


def check_user_key_count(held: int) -> None:
    """R29: a user holds at most :data:`USER_KEYS_MAX` keys (delete one to make another)."""
    if held >= USER_KEYS_MAX:
        raise LimitExceeded(f"the user holds {held} API keys, the most allowed ({USER_KEYS_MAX}); delete one first")
