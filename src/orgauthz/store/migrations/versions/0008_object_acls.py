"""object_acls, acl_entries and deployment_pools: object access control lists (R26, R27)

The ACLs of deployments, work pools and blocks, their entries, and the work pool each
deployment names.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "object_acls",
        sa.Column("workspace_id", sa.String(128), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("object", sa.String(160), primary_key=True),
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_object_acls_org_id", "object_acls", ["org_id"])
    op.create_table(
        "acl_entries",
        sa.Column("workspace_id", sa.String(128), primary_key=True),
        sa.Column("object", sa.String(160), primary_key=True),
        sa.Column("actor", sa.String(160), primary_key=True),
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("is_grant", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id", "object"], ["object_acls.workspace_id", "object_acls.object"], ondelete="CASCADE"
        ),
    )
    op.create_index("ix_acl_entries_org_actor", "acl_entries", ["org_id", "actor"])
    op.create_table(
        "deployment_pools",
        sa.Column("workspace_id", sa.String(128), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("deployment_id", sa.String(128), primary_key=True),
        sa.Column("pool_id", sa.String(128), nullable=False),
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_deployment_pools_ws_pool", "deployment_pools", ["workspace_id", "pool_id"])


def downgrade() -> None:
    op.drop_index("ix_deployment_pools_ws_pool", table_name="deployment_pools")
    op.drop_table("deployment_pools")
    op.drop_index("ix_acl_entries_org_actor", table_name="acl_entries")
    op.drop_table("acl_entries")
    op.drop_index("ix_object_acls_org_id", table_name="object_acls")
    op.drop_table("object_acls")
