"""Prefect's scope and permission ids in stored custom roles (R21); every organization has an Owner (R3, R24)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 08:00:00

The catalog now uses Prefect Cloud's own ids (policies/scopes.yaml). A custom role stored
before names ids of the previous catalog; each is rewritten to the ids that give the role at
least what the old id gave (docs/policies.md, "Prefect's ids", has the table and the reasons):

- renamed ids become their new id (``create:service_account`` -> ``create:bot``);
- ids whose meaning was split become every part (the old ``see_work_pools`` covered work
  queues and workers too);
- ``manage_workspace_settings`` meant "change the settings"; Prefect's id of that name deletes
  the workspace, so the role gets ``write_workspace_settings``, which is what it had;
- ``*:account_role`` gated custom roles of both levels; Prefect gates workspace ones with
  ``*:workspace_role``, so the role gets both.

Organizations stored before the Owner role existed get their earliest Admin (by the time
they joined, then user id) as Owner (R3). Downgrade makes every Owner an Admin again.

The table is written here, not imported: a migration must keep meaning what it meant when
it shipped. Downgrade maps the new ids back where a previous-catalog id exists and drops
the ones the previous catalog did not have.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE: dict[str, tuple[str, ...]] = {
    "see_work_pools": ("see_work_pools", "see_work_queues", "see_workers"),
    "manage_work_pools": ("manage_work_pools", "manage_work_queues", "see_workers"),
    "write_workers": ("write_workers", "see_work_pools", "see_work_queues"),
    "submit_flow_runs": ("write_workers", "see_work_pools", "see_work_queues"),
    "manage_secret_blocks": ("manage_blocks",),
    "write_events": ("manage_events",),
    "manage_workspace_default_role": ("manage_workspace_users",),
    "manage_workspace_settings": ("write_workspace_settings",),
    "update:workspace": ("administrate:workspace",),
    "create:service_account": ("create:bot",),
    "read:service_account": ("read:bot",),
    "update:service_account": ("update:bot",),
    "delete:service_account": ("delete:bot",),
    "delete:invitation": ("update:invitation",),
    "create:account_role": ("create:account_role", "create:workspace_role"),
    "read:account_role": ("read:account_role", "read:workspace_role"),
    "update:account_role": ("update:account_role", "update:workspace_role"),
    "delete:account_role": ("delete:account_role", "delete:workspace_role"),
}

# The previous catalog's 52 ids (31 workspace scopes, 21 organization permissions).
PREVIOUS: frozenset[str] = frozenset(
    [
        "see_flows",
        "manage_flows",
        "run_flows",
        "see_deployments",
        "run_deployments",
        "manage_deployments",
        "see_work_pools",
        "manage_work_pools",
        "write_workers",
        "submit_flow_runs",
        "see_blocks",
        "manage_blocks",
        "see_secret_blocks",
        "manage_secret_blocks",
        "see_variables",
        "manage_variables",
        "see_automations",
        "manage_automations",
        "see_concurrency_limits",
        "manage_concurrency_limits",
        "see_artifacts",
        "manage_artifacts",
        "see_events",
        "write_events",
        "see_webhooks",
        "manage_webhooks",
        "see_workspace_users",
        "manage_workspace_users",
        "manage_workspace_default_role",
        "see_workspace_settings",
        "manage_workspace_settings",
        "read:account",
        "update:account",
        "read:account_membership",
        "update:account_membership",
        "delete:account_membership",
        "create:invitation",
        "read:invitation",
        "delete:invitation",
        "create:workspace",
        "read:workspace",
        "update:workspace",
        "delete:workspace",
        "create:service_account",
        "read:service_account",
        "update:service_account",
        "delete:service_account",
        "create:account_role",
        "read:account_role",
        "update:account_role",
        "delete:account_role",
        "read:audit_event",
    ]
)
DOWNGRADE: dict[str, str] = {
    "write_workspace_settings": "manage_workspace_settings",
    "administrate:workspace": "update:workspace",
    "create:bot": "create:service_account",
    "read:bot": "read:service_account",
    "update:bot": "update:service_account",
    "delete:bot": "delete:service_account",
    "update:invitation": "delete:invitation",
    "manage_events": "write_events",
}

_roles = sa.table("custom_roles", sa.column("id", sa.String), sa.column("scopes", sa.JSON))
_members = sa.table(
    "memberships",
    sa.column("org_id", sa.String),
    sa.column("user_id", sa.String),
    sa.column("org_role", sa.String),
    sa.column("created_at", sa.DateTime),
)


def _first_owners() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_members.c.org_id, _members.c.user_id, _members.c.org_role).order_by(
            _members.c.org_id, _members.c.created_at, _members.c.user_id
        )
    ).all()
    owned = {org for org, _, role in rows if role == "Owner"}
    for org, user, role in rows:
        if role == "Admin" and org not in owned:
            owned.add(org)
            bind.execute(
                sa.update(_members).where(_members.c.org_id == org, _members.c.user_id == user).values(org_role="Owner")
            )


def rewrite(scopes: Sequence[str], mapping: Callable[[str], Sequence[str]]) -> list[str]:
    """The role's scopes under ``mapping``, sorted, without duplicates (how roles are stored)."""
    return sorted({new for old in scopes for new in mapping(old)})


def _rewrite_all(mapping: Callable[[str], Sequence[str]]) -> None:
    bind = op.get_bind()
    for role_id, scopes in bind.execute(sa.select(_roles.c.id, _roles.c.scopes)).all():
        new = rewrite(scopes or [], mapping)
        if new != list(scopes or []):
            bind.execute(sa.update(_roles).where(_roles.c.id == role_id).values(scopes=new))


def upgrade() -> None:
    _rewrite_all(lambda scope: UPGRADE.get(scope, (scope,)))
    _first_owners()


def downgrade() -> None:
    def previous(scope: str) -> Sequence[str]:
        if scope in DOWNGRADE:
            return (DOWNGRADE[scope],)
        return (scope,) if scope in PREVIOUS else ()

    _rewrite_all(previous)
    op.get_bind().execute(sa.update(_members).where(_members.c.org_role == "Owner").values(org_role="Admin"))
