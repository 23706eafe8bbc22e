"""Row versions on items and users, for ETags and conditional writes (If-Match).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Existing rows start at version 1, like new ones. Adding a NOT NULL column with a constant
default is a catalog-only change on PostgreSQL 11+ (no table rewrite) and a plain ALTER
TABLE on SQLite (no batch rebuild, which would lose the tables' named constraints and
cannot run offline); SQLite 3.35+ drops the column in place too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("items", "users")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table, sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "version")
