"""A per-account admin session stamp, so that signing out of the admin ends the session.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

The admin's session is a signed cookie: a copy saved before a logout stayed valid until it
expired. Each session now carries the account's `admin_sessions` count from its sign-in,
and a logout increments it, so every earlier cookie of that account is refused. A NOT NULL
column with a constant default: catalog-only on PostgreSQL 11+, a plain ALTER on SQLite.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("admin_sessions", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("users", "admin_sessions")
