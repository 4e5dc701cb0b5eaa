"""The access rules of ``orgauthz.domain.rules``, one table per rule (SPEC §1).

Each row is a situation and the outcome the SPEC gives it; a rule broken in the module
fails its row here, before any server or database is involved.
"""

from __future__ import annotations

import pytest

from orgauthz.domain import rules
from orgauthz.errors import FailedPrecondition, InvalidArgument, LimitExceeded, PermissionDenied

A, M, CUSTOM = rules.ADMIN, rules.MEMBER, "auditor"
BUILTIN = {"Admin": "organization", "Member": "organization", "Viewer": "workspace", "Owner": "workspace"}


@pytest.mark.parametrize(
    ("actor", "before", "after", "admins", "outcome"),
    [
        (A, M, A, 1, None),  # an Admin makes a Member an Admin
        (M, M, A, 1, PermissionDenied),  # R8: a Member may not
        (CUSTOM, M, A, 1, PermissionDenied),  # R8: whatever custom permissions it holds
        (None, M, A, 1, PermissionDenied),  # R8, R11: a service account never is an Admin
        (CUSTOM, A, M, 3, PermissionDenied),  # R8: changing an Admin's role needs an Admin
        (A, A, M, 2, None),  # one of two Admins demoted
        (A, A, M, 1, FailedPrecondition),  # R3: not the last one
        (A, A, CUSTOM, 1, FailedPrecondition),  # R3: not to a custom role either
        (A, A, A, 1, None),  # unchanged: the last Admin stays one
        (CUSTOM, M, CUSTOM, 1, None),  # roles without Admin need no Admin
    ],
)
def test_r3_r8_role_changes(actor, before, after, admins, outcome) -> None:
    if outcome is None:
        rules.check_role_change(actor_role=actor, before=before, after=after, admins=admins)
    else:
        with pytest.raises(outcome):
            rules.check_role_change(actor_role=actor, before=before, after=after, admins=admins)


@pytest.mark.parametrize(
    ("actor", "role", "admins", "leaving", "outcome"),
    [
        (CUSTOM, M, 1, False, None),  # removing a Member needs no Admin (the permission does)
        (A, A, 2, False, None),
        (CUSTOM, A, 2, False, PermissionDenied),  # R8
        (A, A, 2, True, None),  # an Admin may leave while another remains
        (A, A, 1, True, FailedPrecondition),  # R3: the last Admin cannot leave
        (A, A, 1, False, FailedPrecondition),  # R3: nor be removed
    ],
)
def test_r3_r8_removals(actor, role, admins, leaving, outcome) -> None:
    kwargs = {"actor_role": actor, "role": role, "admins": admins, "leaving": leaving}
    if outcome is None:
        rules.check_removal(**kwargs)
    else:
        with pytest.raises(outcome):
            rules.check_removal(**kwargs)


@pytest.mark.parametrize(
    ("actor", "role", "allowed"),
    [(A, A, True), (A, M, True), (M, M, True), (CUSTOM, A, False), (M, A, False), (None, A, False)],
)
def test_r8_only_admins_invite_admins(actor, role, allowed) -> None:
    if allowed:
        rules.check_invitation_role(actor_role=actor, role=role)
    else:
        with pytest.raises(PermissionDenied):
            rules.check_invitation_role(actor_role=actor, role=role)


@pytest.mark.parametrize(("role", "allowed"), [(M, True), (CUSTOM, True), (A, False)])
def test_r11_service_accounts_never_hold_admin(role, allowed) -> None:
    if allowed:
        rules.check_service_account_role("org_role", role)
    else:
        with pytest.raises(InvalidArgument) as err:
            rules.check_service_account_role("org_role", role)
        assert err.value.field == "org_role"


@pytest.mark.parametrize(
    ("used", "adding", "limit", "allowed"),
    [(0, 1, 1, True), (1, 1, 1, False), (9, 1, 10, True), (8, 3, 10, False), (0, 0, 0, True), (5, 5, 10, True)],
)
def test_r10_limits(used, adding, limit, allowed) -> None:
    if allowed:
        rules.check_limit("workspaces", used=used, adding=adding, limit=limit)
    else:
        with pytest.raises(LimitExceeded, match=f"limit of {limit} workspaces"):
            rules.check_limit("workspaces", used=used, adding=adding, limit=limit)


@pytest.mark.parametrize(
    ("inherits", "level", "allowed"),
    [
        ("", "workspace", True),
        ("Viewer", "workspace", True),
        ("Viewer", "organization", False),  # another level's role
        ("Member", "organization", True),
        ("Admin", "organization", False),  # an Admin by another name
        ("auditor", "organization", False),  # not a built-in role
    ],
)
def test_r22_custom_roles_inherit_a_builtin_of_their_level_other_than_admin(inherits, level, allowed) -> None:
    if allowed:
        rules.check_inherits("inherits", inherits=inherits, level=level, builtin_levels=BUILTIN)
    else:
        with pytest.raises(InvalidArgument):
            rules.check_inherits("inherits", inherits=inherits, level=level, builtin_levels=BUILTIN)


@pytest.mark.parametrize(("role_id", "allowed"), [("Viewer", False), ("Admin", False), ("auditor", True)])
def test_r22_custom_roles_take_no_builtin_name(role_id, allowed) -> None:
    if allowed:
        rules.check_custom_role_id("id", role_id, BUILTIN)
    else:
        with pytest.raises(InvalidArgument):
            rules.check_custom_role_id("id", role_id, BUILTIN)
