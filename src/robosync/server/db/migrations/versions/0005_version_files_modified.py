"""versions.files_modified: of the paths a version added or changed, how many changed.

Revision ID: 0005_files_modified
Revises: 0004_console
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_files_modified"
down_revision = "0004_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column; older versions count 0 modified."""
    with op.batch_alter_table("versions") as batch:
        batch.add_column(
            sa.Column("files_modified", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("files_modified")
