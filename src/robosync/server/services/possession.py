"""Proof of possession: which blobs a user has shown to hold the bytes of.

A blob is ``present`` *for a user* only if it is stored and the user
possesses it: the user completed a verified upload of it (a ``possessions``
row) or a project the user may read names it (a ``files`` row, of any
version): dedup follows access, so a colleague's duplicate costs no upload.
Knowing a digest is therefore not enough to commit it, and so not enough to
download it: a user who does not possess a stored blob uploads it again (to a
staging key, see ``services/uploads.py``), which the store verifies byte for
byte; the stored copy stays single.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from robosync.server.access import readable_project_ids
from robosync.server.db.models import File, Possession, utcnow
from robosync.server.db.queries import key_in, one_of, table_of

IN_BATCH = 1000


def _batches(digests: Iterable[str]) -> Iterable[list[str]]:
    wanted = sorted(set(digests))
    for i in range(0, len(wanted), IN_BATCH):
        yield wanted[i : i + IN_BATCH]


def possessed_digests(session: Session, user_id: int, digests: Iterable[str]) -> set[str]:
    """The subset of ``digests`` the user possesses (verified upload, or a readable project)."""
    found: set[str] = set()
    for batch in _batches(digests):
        found.update(
            session.scalars(
                select(Possession.digest).where(
                    Possession.user_id == user_id, one_of(session, Possession.digest, batch)
                )
            )
        )
        rest = [d for d in batch if d not in found]
        if not rest:
            continue
        projects = readable_project_ids(session, user_id)
        # One query per project (a user reads at most a few dozen): each names its
        # project_id, so on PostgreSQL it reads one ``files`` partition by index.
        # Rarely reached: every committed digest was possessed when committed.
        for project_id in projects:
            if not rest:
                break
            hits = set(
                session.scalars(
                    select(File.digest)
                    .where(File.project_id == project_id, one_of(session, File.digest, rest))
                    .distinct()
                )
            )
            found.update(hits)
            rest = [d for d in rest if d not in hits]
    return found


def record_possessions(session: Session, user_id: int, digests: Iterable[str]) -> None:
    """Remember that the user proved to hold these blobs (idempotent)."""
    now = utcnow()
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    for batch in _batches(digests):
        rows = [{"user_id": user_id, "digest": d, "created_at": now} for d in batch]
        session.execute(  # many parameter sets, one compiled statement (see ensure_pending)
            insert(table_of(Possession)).on_conflict_do_nothing(
                index_elements=["user_id", "digest"]
            ),
            rows,
        )


def forget_possessions(session: Session, digests: Iterable[str]) -> None:
    """Drop every user's possession of these blobs (garbage collection deleted them)."""
    for batch in _batches(digests):
        session.execute(delete(Possession).where(key_in(session, Possession.digest, batch)))
