"""workspaces.description: a workspace has a description (R15)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00

Workspaces stored before this migration get the empty description. The column is NOT NULL
with the server default ``''``, so writers that do not name it (``orgauthz import``) keep
working.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_column("description")
