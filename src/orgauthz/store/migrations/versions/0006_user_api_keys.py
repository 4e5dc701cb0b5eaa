"""user_api_keys: users hold personal API keys (R29)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 09:00:00

A key belongs to a user, not to an organization (no foreign key to ``users`` either: the
platform asserts users the sidecar may not have stored yet). Only the key's SHA-256 and a
masked form are stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_api_keys",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("masked", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("user_api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_api_keys_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("user_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_api_keys_user_id"))
    op.drop_table("user_api_keys")
