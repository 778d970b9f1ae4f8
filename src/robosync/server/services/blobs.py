"""Blob rows: which digests are present, and marking them pending or present."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from robosync.server.db.models import BLOB_PENDING, BLOB_PRESENT, Blob, utcnow
from robosync.server.db.queries import one_of


def blob_key(digest: str) -> str:
    """The object store key of a blob."""
    return f"blobs/{digest}"


def present_digests(session: Session, digests: Iterable[str]) -> set[str]:
    """The subset of ``digests`` whose blob is present."""
    wanted = list(set(digests))
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(Blob.digest).where(
                one_of(session, Blob.digest, wanted), Blob.state == BLOB_PRESENT
            )
        )
    )


def ensure_pending(session: Session, sizes: dict[str, int]) -> None:
    """Insert a pending row for each digest that has no row yet (race-safe)."""
    if not sizes:
        return
    rows = [
        {"digest": d, "size": s, "state": BLOB_PENDING, "created_at": utcnow()}
        for d, s in sizes.items()
    ]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(Blob).values(rows).on_conflict_do_nothing(index_elements=["digest"]))


def mark_present(session: Session, digest: str, size: int) -> None:
    """Record that the store holds the verified blob ``digest`` of ``size`` bytes."""
    ensure_pending(session, {digest: size})
    session.execute(update(Blob).where(Blob.digest == digest).values(state=BLOB_PRESENT, size=size))
