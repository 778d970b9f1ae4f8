"""Initial schema: users, tokens, projects, blobs, files, versions, uploads, possessions,
idempotency keys.

On PostgreSQL ``files`` is hash-partitioned by project_id (32 partitions),
``blobs`` by digest (16 partitions) and ``possessions`` by user_id (16
partitions); SQLite gets plain tables.

Revision ID: 0001
Revises: none
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# BIGINT ids, except SQLite, which autoincrements INTEGER primary keys only.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Paths compare by code point: SQLite's BINARY does; PostgreSQL needs "C".
PATH = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")

# Frozen copy of models.PARTITIONS as of this revision.
FILES_PARTITIONS = 32
BLOBS_PARTITIONS = 16
POSSESSIONS_PARTITIONS = 16

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _create_hash_partitions(table: str, modulus: int) -> None:
    for remainder in range(modulus):
        op.execute(
            f"CREATE TABLE {table}_p{remainder:02d} PARTITION OF {table} "
            f"FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder})"
        )


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_blobs")),
        postgresql_partition_by="HASH (digest)",
    )
    if _is_postgresql():
        _create_hash_partitions("blobs", BLOBS_PARTITIONS)
    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "projects",
        sa.Column("id", ID, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("head_version", sa.Integer(), nullable=False),
        sa.Column("file_count", sa.BigInteger(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_projects_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index("uq_projects_owner_name", ["owner_id", "name"], unique=True)

    op.create_table(
        "tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("robot", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tokens_token_hash")),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_tokens_live_robot",
            ["user_id", "robot"],
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )

    op.create_table(
        "uploads",
        sa.Column("id", ID, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("upload_id", sa.String(length=1024), nullable=True),
        sa.Column("staging_key", sa.String(length=200), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("blocks", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_uploads_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uploads_digest"), ["digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_uploads_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_uploads_user_id"), ["user_id"], unique=False)

    # A partitioned table's primary key must hold the partition key; SQLite only
    # assigns ids to a one-column INTEGER PRIMARY KEY.
    files_key = ("project_id", "id") if _is_postgresql() else ("id",)
    op.create_table(
        "files",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.Column("path", PATH, nullable=False),
        sa.Column("path_key", PATH, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("added_in", sa.Integer(), nullable=False),
        sa.Column("removed_in", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_files_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*files_key, name=op.f("pk_files")),
        postgresql_partition_by="HASH (project_id)",
    )
    if _is_postgresql():
        _create_hash_partitions("files", FILES_PARTITIONS)
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index(
            "ix_files_project_added", ["project_id", "added_in", "id"], unique=False
        )
        batch_op.create_index("ix_files_project_digest", ["project_id", "digest"], unique=False)
        batch_op.create_index("ix_files_digest", ["digest"], unique=False)
        batch_op.create_index("ix_files_project_path", ["project_id", "path"], unique=False)
        batch_op.create_index(
            "ix_files_project_removed",
            ["project_id", "removed_in", "id"],
            unique=False,
            sqlite_where=sa.text("removed_in IS NOT NULL"),
            postgresql_where=sa.text("removed_in IS NOT NULL"),
        )
        batch_op.create_index(
            "uq_files_live_key",
            ["project_id", "path_key"],
            unique=True,
            sqlite_where=sa.text("removed_in IS NULL"),
            postgresql_where=sa.text("removed_in IS NULL"),
        )
        batch_op.create_index(
            "uq_files_live_path",
            ["project_id", "path"],
            unique=True,
            sqlite_where=sa.text("removed_in IS NULL"),
            postgresql_where=sa.text("removed_in IS NULL"),
        )

    op.create_table(
        "possessions",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_possessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "digest", name=op.f("pk_possessions")),
        postgresql_partition_by="HASH (user_id)",
    )
    if _is_postgresql():
        _create_hash_partitions("possessions", POSSESSIONS_PARTITIONS)
    with op.batch_alter_table("possessions", schema=None) as batch_op:
        batch_op.create_index("ix_possessions_digest", ["digest"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_idempotency_keys_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "project_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "versions",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("robot", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("files_added", sa.Integer(), nullable=False),
        sa.Column("files_removed", sa.Integer(), nullable=False),
        sa.Column("file_count", sa.BigInteger(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_versions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "number", name=op.f("pk_versions")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("versions")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("possessions", schema=None) as batch_op:
        batch_op.drop_index("ix_possessions_digest")
    op.drop_table("possessions")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_files_live_path",
            sqlite_where=sa.text("removed_in IS NULL"),
            postgresql_where=sa.text("removed_in IS NULL"),
        )
        batch_op.drop_index(
            "uq_files_live_key",
            sqlite_where=sa.text("removed_in IS NULL"),
            postgresql_where=sa.text("removed_in IS NULL"),
        )
        batch_op.drop_index(
            "ix_files_project_removed",
            sqlite_where=sa.text("removed_in IS NOT NULL"),
            postgresql_where=sa.text("removed_in IS NOT NULL"),
        )
        batch_op.drop_index("ix_files_project_path")
        batch_op.drop_index("ix_files_project_digest")
        batch_op.drop_index("ix_files_digest")
        batch_op.drop_index("ix_files_project_added")

    op.drop_table("files")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_user_id"))
        batch_op.drop_index(batch_op.f("ix_uploads_expires_at"))
        batch_op.drop_index(batch_op.f("ix_uploads_digest"))

    op.drop_table("uploads")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_tokens_live_robot",
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_tokens_user_id"))

    op.drop_table("tokens")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index("uq_projects_owner_name")

    op.drop_table("projects")
    op.drop_table("users")
    op.drop_table("blobs")
