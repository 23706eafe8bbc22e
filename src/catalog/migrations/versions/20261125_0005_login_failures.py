"""Login throttling: failed logins per account and per client address.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

One row per throttled key (a digest of "account:<email>" or "address:<ip>"): its
failure count and when the last one happened. The index on last_failure_at makes
purging idle rows one range scan.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failures")),
    )
    op.create_index(
        op.f("ix_login_failures_last_failure_at"), "login_failures", ["last_failure_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_login_failures_last_failure_at"), table_name="login_failures")
    op.drop_table("login_failures")
