"""Drop orgauthz_expect: access writes always take two round trips

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 22:10:00

Grant, change and revoke on PostgreSQL are decided on the rows read under the write lock
(``Database.write_on_loop``); no write states an expectation any more, so the function of
migration 0002 is dropped. Downgrading creates it again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS orgauthz_expect(boolean)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION orgauthz_expect(ok boolean) RETURNS void LANGUAGE plpgsql VOLATILE AS $$"
            " BEGIN IF ok IS NOT TRUE THEN RAISE EXCEPTION 'orgauthz: the write was decided on rows that have"
            " since changed' USING ERRCODE = 'OZ409'; END IF; END $$"
        )
