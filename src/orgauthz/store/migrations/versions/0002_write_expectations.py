"""orgauthz_expect: a write sent in one round trip states what it was decided on

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:10:00

A grant, change or revoke on PostgreSQL may be sent as one query string: ``BEGIN``, the
write lock, ``SELECT orgauthz_expect(<the head revision and the rows it checked are the
ones it was decided on>)``, its rows and ``COMMIT``. When the expectation does not hold the
function raises SQLSTATE ``OZ409``; the rest of the string is not run, nothing is written,
and the write is decided again on what the database holds (``Database.write_on_loop``).
SQLite has no such function (it never takes that path).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CREATE = """
CREATE OR REPLACE FUNCTION orgauthz_expect(ok boolean) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF ok IS NOT TRUE THEN
    RAISE EXCEPTION 'orgauthz: the write was decided on rows that have since changed'
      USING ERRCODE = 'OZ409';
  END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS orgauthz_expect(boolean)")
