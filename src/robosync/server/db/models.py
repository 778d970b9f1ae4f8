"""SQLAlchemy models of the metadata database (the same on SQLite and PostgreSQL).

Schema changes go through Alembic (``migrations/versions``), never ``create_all``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names so migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BLOB_PENDING = "pending"
BLOB_PRESENT = "present"
# Chosen by garbage collection: being removed from the store, never "present" again.
BLOB_DELETING = "deleting"

# Hash partitions on PostgreSQL (the migration creates them; SQLite has one table).
# Powers of two, so a partition can later be split in two (modulus 2n, remainders
# r and r + n) without touching the others. ``files`` is the big, growing table
# (every version's rows; 150 million live rows at the design maximum, ~4.7 million
# per partition with 32); ``blobs`` rows are narrower and one per digest (~120
# million at the maximum, ~7.5 million per partition with 16).
# ``possessions`` (one row per user and digest that user proved to hold) is
# partitioned by user, since every lookup names one user.
PARTITIONS = {"files": 32, "blobs": 16, "possessions": 16}


def partition_name(table: str, remainder: int) -> str:
    """Name of one hash partition of ``table`` (``files_p07``)."""
    return f"{table}_p{remainder:02d}"


def is_partition(table_name: str) -> bool:
    """Whether ``table_name`` is one of the hash partitions (not a model table)."""
    parent, sep, suffix = table_name.rpartition("_p")
    return (
        bool(sep)
        and parent in PARTITIONS
        and suffix.isdigit()
        and int(suffix) < PARTITIONS[parent]
        and table_name == partition_name(parent, int(suffix))
    )


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp, also on SQLite (which stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store as UTC."""
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back as aware UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING)


Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PKs only
# Paths compare by code point (UTF-8 byte order) on both databases: SQLite's
# BINARY does, PostgreSQL needs the "C" collation (also faster than a locale).
PathText = Text().with_variant(Text(collation="C"), "postgresql")


class User(Base):
    """A person or team; owns projects and has one token per robot."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Logical bytes the user's projects may hold (sum of their heads); None: no quota.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Argon2 hash of the console password; None: the user cannot sign in to the console.
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)


class WebSession(Base):
    """A signed-in browser: only the SHA-256 of its cookie is kept, with a CSRF token."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class Token(Base):
    """A robot's bearer token; only its SHA-256 is kept."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    robot: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Written at most once a minute per token (see accounts.authenticate).
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_push_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (
        # One live token per robot of a user.
        Index(
            "uq_tokens_live_robot",
            "user_id",
            "robot",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )


class Project(Base):
    """A versioned folder of images owned by one user."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    head_version: Mapped[int] = mapped_column(Integer, default=0)
    file_count: Mapped[int] = mapped_column(BigInteger, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Set by a delete: the project is in the trash (invisible to every route but
    # restore) until garbage collection purges it after the trash period.
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (
        # Names are unique among an owner's live projects; the trash may hold a twin.
        Index(
            "uq_projects_owner_name",
            "owner_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )


class Member(Base):
    """A user's role in a project of another user (``read``, ``write`` or ``admin``).

    The owner has no row: ownership is ``projects.owner_id`` and means ``admin``.
    """

    __tablename__ = "members"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class AuditEvent(Base):
    """Who did what to which project, when and from where (kept after the project is purged).

    Names are copied, not referenced, so a row still reads after its user,
    token or project is gone.
    """

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(32))
    user_name: Mapped[str] = mapped_column(String(200))
    # The robot whose token was used, or the operator's login for an admin command.
    actor: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    project_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    details: Mapped[str] = mapped_column(Text, default="{}")

    __table_args__ = (Index("ix_audit_events_project_at", "project_id", "at"),)


class Blob(Base):
    """One stored object per digest for the whole deployment (global dedup).

    On PostgreSQL hash-partitioned by digest (see :data:`PARTITIONS`).
    """

    __tablename__ = "blobs"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default=BLOB_PENDING)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # When an upload plan or a commit last referred to this blob (set before the
    # commit's transaction): garbage collection keeps a blob used within its grace
    # period even if no version references it yet.
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = {"postgresql_partition_by": "HASH (digest)"}


class File(Base):
    """A path of a project holding a blob in versions ``added_in <= v < removed_in``.

    On PostgreSQL hash-partitioned by project (see :data:`PARTITIONS`), so every
    query names ``project_id`` and touches one partition. A partitioned table's
    primary key must contain the partition key, hence ``(project_id, id)``; on
    SQLite the migration makes ``id`` alone the key, because SQLite assigns ids
    only to a one-column INTEGER PRIMARY KEY (``id`` is unique on both).
    """

    __tablename__ = "files"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    # BIGSERIAL on PostgreSQL (identity columns on partitioned tables need 17+).
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(PathText)
    # paths.case_key(path): two live paths may not share it (case-insensitive checkouts).
    path_key: Mapped[str] = mapped_column(PathText)
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    added_in: Mapped[int] = mapped_column(Integer)
    removed_in: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        # Manifest of any version: keyset scan by path.
        Index("ix_files_project_path", "project_id", "path"),
        # Changes since M: rows added / removed after M, keyset by id.
        Index("ix_files_project_added", "project_id", "added_in", "id"),
        # Only closed rows: a lookup of live rows must use the live indexes below.
        Index(
            "ix_files_project_removed",
            "project_id",
            "removed_in",
            "id",
            sqlite_where=text("removed_in IS NOT NULL"),
            postgresql_where=text("removed_in IS NOT NULL"),
        ),
        # Live rows: one per path and one per case key.
        Index(
            "uq_files_live_path",
            "project_id",
            "path",
            unique=True,
            sqlite_where=text("removed_in IS NULL"),
            postgresql_where=text("removed_in IS NULL"),
        ),
        Index(
            "uq_files_live_key",
            "project_id",
            "path_key",
            unique=True,
            sqlite_where=text("removed_in IS NULL"),
            postgresql_where=text("removed_in IS NULL"),
        ),
        # Downloads: is this digest in this project (any version)?
        Index("ix_files_project_digest", "project_id", "digest"),
        # Garbage collection: does any project reference this digest?
        Index("ix_files_digest", "digest"),
        {"postgresql_partition_by": "HASH (project_id)"},
    )


class Version(Base):
    """One commit of a project; version 0 is the empty project."""

    __tablename__ = "versions"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    robot: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    files_added: Mapped[int] = mapped_column(Integer, default=0)
    files_removed: Mapped[int] = mapped_column(Integer, default=0)
    # Of files_added, the paths whose content changed (an older row: 0).
    files_modified: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    file_count: Mapped[int] = mapped_column(BigInteger, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class Upload(Base):
    """An in-flight upload session of one blob by one user."""

    __tablename__ = "uploads"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    upload_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)  # None: single PUT
    # Set for a proof-of-possession upload (the blob is already stored): the
    # staging key (``proofs/<token>``) the caller uploads to instead of the blob's key.
    staging_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    parts: Mapped[int] = mapped_column(Integer)
    # Block SHA-256s, hex, concatenated: needed to complete the multipart upload.
    blocks: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (
        # A user's open uploads, by digest: planning, completing and counting uploads in
        # flight read only these, never the completed rows kept until they expire. (Every
        # query by user is of open uploads; an index of all a user's rows misled SQLite.)
        Index(
            "ix_uploads_open_user_digest",
            "user_id",
            "digest",
            sqlite_where=text("completed_at IS NULL"),
            postgresql_where=text("completed_at IS NULL"),
        ),
    )


class Possession(Base):
    """A user proved, by a verified upload, to hold the bytes of a digest.

    A blob is ``present`` for a user only if the user possesses it (this row,
    or a ``files`` row of one of the user's projects): knowing a digest is not
    enough to commit, and so to read, a blob. On PostgreSQL hash-partitioned
    by user (see :data:`PARTITIONS`).
    """

    __tablename__ = "possessions"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        # Garbage collection drops the possessions of the blobs it deletes.
        Index("ix_possessions_digest", "digest"),
        {"postgresql_partition_by": "HASH (user_id)"},
    )


class IdempotencyKey(Base):
    """The stored answer of a commit sent with an ``Idempotency-Key``."""

    __tablename__ = "idempotency_keys"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
