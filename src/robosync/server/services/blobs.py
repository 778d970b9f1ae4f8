"""Blob rows: which digests are present, and marking them pending or present."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from robosync.server.db.models import BLOB_DELETING, BLOB_PENDING, BLOB_PRESENT, Blob, utcnow
from robosync.server.db.queries import key_in, table_of

# ``last_used_at`` is refreshed only when older than this, so a blob shared by
# many commits is not rewritten by each of them (fewer row locks and dead rows).
# Garbage collection must use a grace period well above it.
TOUCH_RESOLUTION = timedelta(minutes=10)
IN_BATCH = 1000


def blob_key(digest: str) -> str:
    """The object store key of a blob."""
    return f"blobs/{digest}"


THUMB_PX = 256


def thumb_key(digest: str, px: int = THUMB_PX) -> str:
    """The store key of a blob's thumbnail of ``px`` pixels (outside ``blobs/``)."""
    return f"thumbs/{digest}/{px}"


def derived_keys(digest: str) -> list[str]:
    """Every derived object of a blob, deleted with it by garbage collection."""
    return [thumb_key(digest, THUMB_PX)]


def present_digests(session: Session, digests: Iterable[str], *, lock: bool = False) -> set[str]:
    """The subset of ``digests`` whose blob is present (globally: see ``possession.py``).

    With ``lock`` the rows are held FOR KEY SHARE (PostgreSQL) until the
    transaction ends, so garbage collection cannot choose them meanwhile.
    """
    wanted = sorted(set(digests))
    found: set[str] = set()
    for i in range(0, len(wanted), IN_BATCH):
        query = select(Blob.digest).where(
            key_in(session, Blob.digest, wanted[i : i + IN_BATCH]), Blob.state == BLOB_PRESENT
        )
        if lock:
            query = query.with_for_update(read=True, key_share=True)
        found.update(session.scalars(query))
    return found


def ensure_pending(session: Session, sizes: dict[str, int]) -> None:
    """Insert a pending row for each digest that has no row yet (race-safe)."""
    if not sizes:
        return
    now = utcnow()
    rows = [
        {"digest": d, "size": s, "state": BLOB_PENDING, "created_at": now, "last_used_at": now}
        for d, s in sizes.items()
    ]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # One statement and many parameter sets: compiled once. A VALUES list of a thousand
    # rows was compiled anew for every batch, 7x the time on SQLite (PERFORMANCE.md).
    session.execute(insert(table_of(Blob)).on_conflict_do_nothing(index_elements=["digest"]), rows)


def blob_generation(session: Session, digest: str) -> datetime | None:
    """``created_at`` of the digest's row, or ``None`` if it has none or GC is deleting it.

    A completion reads it before it HEADs the object and passes it to
    :func:`mark_present`: if garbage collection deleted the row (and the object)
    in between, the new row has another ``created_at`` and the HEAD is stale.
    """
    row = session.execute(select(Blob.state, Blob.created_at).where(Blob.digest == digest)).first()
    if row is None or row.state == BLOB_DELETING:
        return None
    return row.created_at


def blob_generations(session: Session, digests: Iterable[str]) -> dict[str, datetime]:
    """:func:`blob_generation` of many digests at once (those with a live row)."""
    wanted = sorted(set(digests))
    found: dict[str, datetime] = {}
    for i in range(0, len(wanted), IN_BATCH):
        rows = session.execute(
            select(Blob.digest, Blob.state, Blob.created_at).where(
                key_in(session, Blob.digest, wanted[i : i + IN_BATCH])
            )
        )
        found.update({r.digest: r.created_at for r in rows if r.state != BLOB_DELETING})
    return found


def mark_present_many(
    session: Session,
    blobs: dict[str, tuple[int, datetime | None]],
    *,
    only_pending: bool = False,
) -> set[str]:
    """:func:`mark_present` for ``{digest: (verified size, generation)}``; the digests marked.

    Locks the rows in digest order first (PostgreSQL), so concurrent batches
    never deadlock. With ``only_pending``, a row another upload already made
    present is left alone (and not returned).
    """
    if not blobs:
        return set()
    wanted = sorted(blobs)
    chosen: list[tuple[str, int, int]] = []
    for i in range(0, len(wanted), IN_BATCH):
        rows = session.execute(
            select(Blob.digest, Blob.state, Blob.created_at, Blob.size)
            .where(key_in(session, Blob.digest, wanted[i : i + IN_BATCH]))
            .order_by(Blob.digest)
            .with_for_update()
        ).all()
        for r in rows:
            size, generation = blobs[r.digest]
            if r.state == BLOB_DELETING or (only_pending and r.state != BLOB_PENDING):
                continue
            if generation is not None and r.created_at != generation:
                continue
            chosen.append((r.digest, size, r.size))
    now = utcnow()
    same = [d for d, size, row_size in chosen if size == row_size]
    for i in range(0, len(same), IN_BATCH):
        session.execute(
            update(Blob)
            .where(key_in(session, Blob.digest, same[i : i + IN_BATCH]))
            .values(state=BLOB_PRESENT, last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    # A pending row may carry the size a planner claimed; the store's size wins.
    for digest, size, row_size in chosen:
        if size != row_size:
            session.execute(
                update(Blob)
                .where(Blob.digest == digest)
                .values(state=BLOB_PRESENT, size=size, last_used_at=now)
                .execution_options(synchronize_session=False)
            )
    return {d for d, _, _ in chosen}


def mark_present(
    session: Session, digest: str, size: int, *, generation: datetime | None = None
) -> bool:
    """Record that the store holds the verified blob ``digest`` of ``size`` bytes.

    Never revives a row garbage collection is deleting, nor (with ``generation``)
    a row other than the one seen before the store was checked; False then.
    """
    if generation is None:
        ensure_pending(session, {digest: size})
    query = update(Blob).where(Blob.digest == digest, Blob.state != BLOB_DELETING)
    if generation is not None:
        query = query.where(Blob.created_at == generation)
    result = session.execute(query.values(state=BLOB_PRESENT, size=size, last_used_at=utcnow()))
    return getattr(result, "rowcount", 0) == 1


def touch_used(session: Session, digests: Iterable[str]) -> None:
    """Set ``last_used_at`` to now on these blobs (unless set within :data:`TOUCH_RESOLUTION`).

    Called before a commit's transaction and when an upload plan finds blobs
    present, so garbage collection (which spares blobs used within its grace
    period) cannot delete a blob an in-flight commit is about to reference.
    """
    wanted = sorted(set(digests))
    if not wanted:
        return
    now = utcnow()
    stale = now - TOUCH_RESOLUTION
    session.execute(
        update(Blob)
        .where(
            key_in(session, Blob.digest, wanted),
            or_(Blob.last_used_at.is_(None), Blob.last_used_at < stale),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
