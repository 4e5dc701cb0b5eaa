"""The access rules of ``orgauthz.domain.rules``, one table per rule (SPEC §1).

Each row is a situation and the outcome the SPEC gives it; a rule broken in the module
fails its row here, before any server or database is involved.
"""

from __future__ import annotations

import pytest

from orgauthz.domain import rules
from orgauthz.errors import FailedPrecondition, InvalidArgument, LimitExceeded, PermissionDenied

A, M, CUSTOM = rules.ADMIN, rules.MEMBER, "auditor"
# Built-in role names per level; Owner is one at each (R1, R20).
BUILTIN = {
    "organization": frozenset({"Owner", "Admin", "Member"}),
    "workspace": frozenset({"Viewer", "Owner"}),
}
ALL_BUILTIN = BUILTIN["organization"] | BUILTIN["workspace"]


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
        ("Owner", "organization", False),  # an Admin by another name
        ("Owner", "workspace", True),  # the workspace Owner
        ("auditor", "organization", False),  # not a built-in role
    ],
)
def test_r22_custom_roles_inherit_a_builtin_of_their_level_other_than_admin(inherits, level, allowed) -> None:
    if allowed:
        rules.check_inherits("inherits", inherits=inherits, level=level, builtin=BUILTIN[level])
    else:
        with pytest.raises(InvalidArgument):
            rules.check_inherits("inherits", inherits=inherits, level=level, builtin=BUILTIN[level])


@pytest.mark.parametrize(("role_id", "allowed"), [("Viewer", False), ("Admin", False), ("auditor", True)])
def test_r22_custom_roles_take_no_builtin_name(role_id, allowed) -> None:
    if allowed:
        rules.check_custom_role_id("id", role_id, ALL_BUILTIN)
    else:
        with pytest.raises(InvalidArgument):
            rules.check_custom_role_id("id", role_id, ALL_BUILTIN)


OW = rules.OWNER


@pytest.mark.parametrize(
    ("actor", "before", "after", "admins", "owners", "outcome"),
    [
        (OW, M, OW, 1, 1, None),  # an Owner makes a Member an Owner
        (A, M, OW, 2, 1, PermissionDenied),  # R24: an Admin may not make anyone an Owner
        (A, OW, M, 2, 2, PermissionDenied),  # R24: nor change an Owner's role
        (OW, OW, A, 1, 2, None),  # one of two Owners becomes an Admin
        (OW, OW, A, 1, 1, FailedPrecondition),  # R3: not the last Owner
        (OW, OW, OW, 0, 1, None),  # unchanged: the last Owner stays one
        (OW, A, M, 1, 1, None),  # with an Owner, the last Admin may be demoted
        (A, A, M, 1, 1, None),  # by an Admin too (R8)
        (A, A, M, 1, 0, FailedPrecondition),  # no Owner yet (not migrated): the last Admin stays
        (OW, M, A, 0, 1, None),  # an Owner is an Admin for R8
        (None, M, OW, 0, 1, PermissionDenied),  # R11: a service account is neither
    ],
)
def test_r3_r24_owner_changes(actor, before, after, admins, owners, outcome) -> None:
    kwargs = {"actor_role": actor, "before": before, "after": after, "admins": admins, "owners": owners}
    if outcome is None:
        rules.check_role_change(**kwargs)
    else:
        with pytest.raises(outcome):
            rules.check_role_change(**kwargs)


@pytest.mark.parametrize(
    ("actor", "role", "admins", "owners", "leaving", "outcome"),
    [
        (OW, OW, 0, 2, False, None),  # an Owner removes another Owner
        (A, OW, 1, 2, False, PermissionDenied),  # R24: an Admin may not
        (OW, OW, 0, 2, True, None),  # an Owner leaves while another remains
        (OW, OW, 0, 1, True, FailedPrecondition),  # R3: the last Owner cannot leave
        (OW, OW, 0, 1, False, FailedPrecondition),  # R3: nor be removed
        (OW, A, 1, 1, False, None),  # the last Admin goes while an Owner remains
        (A, A, 1, 1, True, None),  # and may leave
        (CUSTOM, A, 2, 1, False, PermissionDenied),  # R8: removing an Admin needs an Owner or Admin
    ],
)
def test_r3_r24_owner_removals(actor, role, admins, owners, leaving, outcome) -> None:
    kwargs = {"actor_role": actor, "role": role, "admins": admins, "owners": owners, "leaving": leaving}
    if outcome is None:
        rules.check_removal(**kwargs)
    else:
        with pytest.raises(outcome):
            rules.check_removal(**kwargs)


@pytest.mark.parametrize(
    ("actor", "role", "allowed"),
    [(OW, OW, True), (A, OW, False), (M, OW, False), (OW, A, True), (A, A, True), (None, OW, False)],
)
def test_r8_r24_only_owners_invite_owners(actor, role, allowed) -> None:
    if allowed:
        rules.check_invitation_role(actor_role=actor, role=role)
    else:
        with pytest.raises(PermissionDenied):
            rules.check_invitation_role(actor_role=actor, role=role)


def test_r11_service_accounts_never_hold_owner() -> None:
    with pytest.raises(InvalidArgument, match="Owner"):
        rules.check_service_account_role("org_role", OW)


def test_r22_organization_custom_roles_do_not_inherit_owner() -> None:
    with pytest.raises(InvalidArgument):
        rules.check_inherits("inherits", inherits=OW, level="organization", builtin=BUILTIN["organization"])


MANAGER = frozenset({"see_workspace_users", "manage_workspace_users"})
DEVELOPER = frozenset({"see_flows", "run_deployments", "manage_flows"})


@pytest.mark.parametrize(
    ("admin", "actor_scopes", "role_scopes", "own", "allowed"),
    [
        (True, frozenset(), DEVELOPER | MANAGER, False, True),  # R2: Owners and Admins are not limited
        (True, frozenset(), DEVELOPER, True, True),  # and may change their own access
        (False, DEVELOPER | MANAGER, DEVELOPER, False, True),  # a role within the actor's scopes
        (False, DEVELOPER | MANAGER, DEVELOPER | MANAGER, False, True),  # exactly the actor's scopes
        (False, MANAGER, DEVELOPER, False, False),  # manage_workspace_users alone grants nothing more
        (False, MANAGER, MANAGER | {"manage_workspace_default_role"}, False, False),  # not an Owner
        (False, DEVELOPER | MANAGER, DEVELOPER, True, False),  # never its own access
        (False, DEVELOPER | MANAGER, frozenset(), False, True),  # a role with no scopes
    ],
)
def test_r28_no_escalation(admin, actor_scopes, role_scopes, own, allowed) -> None:
    kwargs = {"actor_is_admin": admin, "actor_scopes": actor_scopes, "role_scopes": role_scopes, "own_access": own}
    if allowed:
        rules.check_no_escalation(**kwargs)
    else:
        with pytest.raises(PermissionDenied, match="R28"):
            rules.check_no_escalation(**kwargs)


@pytest.mark.parametrize(
    ("admin", "actor_scopes", "role_scopes", "allowed"),
    [(True, frozenset(), DEVELOPER, True), (False, DEVELOPER, DEVELOPER, True), (False, MANAGER, DEVELOPER, False)],
)
def test_r28_default_role_within_the_setters_scopes(admin, actor_scopes, role_scopes, allowed) -> None:
    kwargs = {"actor_is_admin": admin, "actor_scopes": actor_scopes, "role_scopes": role_scopes}
    if allowed:
        rules.check_default_role_scopes(**kwargs)
    else:
        with pytest.raises(PermissionDenied, match="R28"):
            rules.check_default_role_scopes(**kwargs)


@pytest.mark.parametrize(("actor", "allowed"), [(OW, True), (A, True), (M, False), (CUSTOM, False), (None, False)])
def test_r28_only_owners_and_admins_author_custom_roles(actor, allowed) -> None:
    if allowed:
        rules.check_role_author(actor)
    else:
        with pytest.raises(PermissionDenied, match="R28"):
            rules.check_role_author(actor)


@pytest.mark.parametrize(("in_org", "allowed"), [(True, True), (False, False)])
def test_r16_only_the_organizations_members_and_service_accounts_get_workspace_roles(in_org, allowed) -> None:
    if allowed:
        rules.check_grantee("user:bob", in_org=in_org)
    else:
        with pytest.raises(FailedPrecondition, match="R16"):
            rules.check_grantee("user:mallory", in_org=in_org)


@pytest.mark.parametrize(
    ("uses", "allowed"),
    [
        ({"members": 0, "workspace grants": 0}, True),
        ({"members": 1, "workspace grants": 0}, False),
        ({"members": 0, "pending invitations": 2}, False),
        ({}, True),
    ],
)
def test_r22_a_custom_role_in_use_is_not_deleted(uses, allowed) -> None:
    if allowed:
        rules.check_role_unused("auditor", uses)
    else:
        with pytest.raises(FailedPrecondition, match="in use"):
            rules.check_role_unused("auditor", uses)
