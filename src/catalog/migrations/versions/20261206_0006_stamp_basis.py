"""Password re-hash at login keeps sessions: users.stamp_basis.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

A login re-hashes a password hashed with older argon2 parameters. Tokens and admin
sessions carry a stamp of the hash they were issued for; the column keeps the hash the
stamps are made from across such a re-hash (NULL: the current hash, as for every existing
row), and is cleared when a password is set.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("stamp_basis", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "stamp_basis")
