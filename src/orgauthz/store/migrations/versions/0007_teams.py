"""teams and team_members: groups of members and service accounts that hold workspace roles (R25)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00

A team's workspace roles are rows of ``workspace_grants`` with the subject ``team:<id>``.
``organizations.max_teams`` is the plan limit (R10); organizations stored before get 100.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("org_id", sa.String(128), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("org_id", "name"),
    )
    op.create_index("ix_teams_org_id", "teams", ["org_id"])
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.String(128), sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("subject", sa.String(160), primary_key=True),
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_team_members_org_subject", "team_members", ["org_id", "subject"])
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_teams", sa.Integer(), nullable=False, server_default="100"))


def downgrade() -> None:
    # Not a batch operation: on SQLite a batch recreates the table, and dropping the old one
    # would cascade to every row that references an organization.
    op.drop_column("organizations", "max_teams")
    op.execute("DELETE FROM workspace_grants WHERE subject LIKE 'team:%'")
    op.drop_index("ix_team_members_org_subject", table_name="team_members")
    op.drop_table("team_members")
    op.drop_index("ix_teams_org_id", table_name="teams")
    op.drop_table("teams")
