"""Garbage collection: version retention, expired uploads, and unreferenced blobs.

Expired uploads include proof-of-possession uploads: their staging objects
(``proofs/<token>``) are aborted or deleted with them.

A blob is garbage when no ``files`` row (of any version of any project)
names its digest and it was neither created nor used (``last_used_at``: an
upload plan found it present, or a commit named it) within the grace period.
Deleting it races with robots that are about to commit it, so it goes in three
steps, none of which holds a lock across a call to the object store:

1. In one transaction, lock the candidate rows (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL: never wait for a commit, skip what a commit holds), check again
   that no ``files`` row names them and that they are still old, and set their
   state to ``deleting``.
2. Delete the objects.
3. Delete the rows still in state ``deleting``, and every user's possession
   of them (``possessions``: a user who stores the bytes again proves them again).

The commit path holds the rows of the blobs it references ``FOR KEY SHARE``
and requires state ``present`` inside its compare-and-swap transaction, so a
commit either finished before step 1 (its ``files`` rows are seen, the blob
is kept) or finds the blob missing (422, the robot uploads it again). An upload
completion never turns a ``deleting`` row (or a row re-created after step 3)
present, so an object deleted in step 2 is never recorded as present. A
collector that dies between steps leaves ``deleting`` rows; the next run
finishes them.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from robosync.server.db.engine import Database
from robosync.server.db.models import (
    BLOB_DELETING,
    BLOB_PENDING,
    BLOB_PRESENT,
    Blob,
    File,
    IdempotencyKey,
    Member,
    Project,
    Upload,
    Version,
    utcnow,
)
from robosync.server.db.queries import chunked, key_in, one_of
from robosync.server.services import audit
from robosync.server.services.blobs import blob_key, derived_keys
from robosync.server.services.possession import forget_possessions
from robosync.server.store.base import BlobStore

log = logging.getLogger(__name__)

BATCH = 500
DEFAULT_GRACE = timedelta(hours=24)
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"24h"``, ``"7d"``, ``"2w"`` or plain seconds as a timedelta."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"invalid duration {text!r}: write it like 90s, 30m, 24h or 7d")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


@dataclass(frozen=True)
class GcPolicy:
    """What a collection may delete.

    Versions: all are kept unless ``keep_versions`` (the newest N of each
    project) or ``older_than`` (versions created within that age) is given; a
    version is kept if either rule keeps it, and the head always is.
    """

    grace: timedelta = DEFAULT_GRACE
    # Projects deleted longer ago than this are purged (their blobs then follow
    # the usual rule: kept while any other project's files row names them).
    trash: timedelta = timedelta(days=30)
    keep_versions: int | None = None
    older_than: timedelta | None = None
    dry_run: bool = False


@dataclass
class GcReport:
    """What was (or, in a dry run, would be) deleted."""

    projects_purged: int = 0
    versions_pruned: int = 0
    file_rows_deleted: int = 0
    uploads_aborted: int = 0
    upload_rows_deleted: int = 0
    blobs_deleted: int = 0
    bytes_deleted: int = 0
    blobs_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def collect_garbage(
    db: Database, store: BlobStore, policy: GcPolicy, now: datetime | None = None
) -> GcReport:
    """Apply version retention, abort expired uploads, delete unreferenced old blobs.

    A dry run changes nothing and reports what the real run would delete: it
    counts the blobs that only the ``files`` rows of pruned versions name, and
    the pending blobs of expired uploads, as the real run deletes them.
    """
    now = now or utcnow()
    report = GcReport()
    # Dry run only: how many files rows naming each digest pruning would delete.
    pruned_refs: Counter[str] = Counter()
    purge_trash(db, now - policy.trash, policy.dry_run, report, pruned_refs)
    if policy.keep_versions is not None or policy.older_than is not None:
        prune_versions(db, policy, now, report, pruned_refs)
    abandoned = abort_expired_uploads(db, store, now, policy.dry_run, report)
    cutoff = now - policy.grace
    if policy.dry_run:
        count_collectable_blobs(db, cutoff, now, pruned_refs, abandoned, report)
        return report
    delete_unreferenced_blobs(db, store, cutoff, now, report)
    if abandoned:
        # Pending rows whose only upload just expired are garbage whatever their age.
        for batch in chunked(sorted(abandoned), BATCH):
            _delete_blobs(db, store, batch, None, now, report)
    return report


# -- the trash -----------------------------------------------------------------


def purge_trash(
    db: Database,
    deleted_before: datetime,
    dry_run: bool,
    report: GcReport,
    pruned_refs: Counter[str],
) -> None:
    """Remove the projects deleted before ``deleted_before``, with their files and history.

    A dry run only counts them, and adds their ``files`` rows to ``pruned_refs``.
    """
    with db.reading() as session:
        ids = list(
            session.scalars(
                select(Project.id).where(
                    Project.deleted_at.is_not(None), Project.deleted_at < deleted_before
                )
            )
        )
    if dry_run:
        report.projects_purged += len(ids)
        with db.reading() as session:
            for project_id in ids:
                pruned_refs.update(
                    session.scalars(select(File.digest).where(File.project_id == project_id))
                )
        return
    for project_id in ids:
        with db.writing() as session:
            project = session.get(Project, project_id, with_for_update=True)
            if project is None or project.deleted_at is None:
                continue  # restored meanwhile
            # Explicit deletes (not only ON DELETE CASCADE): each names the
            # project, so PostgreSQL touches one files partition.
            session.execute(delete(File).where(File.project_id == project_id))
            for model in (Version, Member, IdempotencyKey):
                session.execute(delete(model).where(model.project_id == project_id))
            audit.record(session, audit.Actor.operator(), audit.PURGE, project)
            session.delete(project)
            report.projects_purged += 1


# -- version retention ---------------------------------------------------------


def prune_versions(
    db: Database, policy: GcPolicy, now: datetime, report: GcReport, pruned_refs: Counter[str]
) -> None:
    """Delete versions no rule keeps, and the ``files`` rows live only in them.

    In a dry run nothing is deleted; ``pruned_refs`` counts, per digest, the
    rows that would be.
    """
    after = 0
    while True:
        with db.reading() as session:
            projects = session.execute(
                select(Project.id, Project.head_version)
                .where(Project.id > after)
                .order_by(Project.id)
                .limit(BATCH)
            ).all()
        if not projects:
            return
        after = projects[-1].id
        for project_id, head in projects:
            _prune_project(db, project_id, head, policy, now, report, pruned_refs)


def _oldest_retained(
    session: Session, project_id: int, head: int, policy: GcPolicy, now: datetime
) -> int:
    """The oldest version kept: every version from it to the head stays."""
    keeps = []
    if policy.keep_versions is not None:
        keeps.append(max(0, head - policy.keep_versions + 1))
    if policy.older_than is not None:
        first_young = session.scalar(
            select(func.min(Version.number)).where(
                Version.project_id == project_id, Version.created_at >= now - policy.older_than
            )
        )
        keeps.append(head if first_young is None else min(first_young, head))
    return min(keeps, default=0)


def _prune_project(
    db: Database,
    project_id: int,
    head: int,
    policy: GcPolicy,
    now: datetime,
    report: GcReport,
    pruned_refs: Counter[str],
) -> None:
    with db.writing() if not policy.dry_run else db.reading() as session:
        keep_from = _oldest_retained(session, project_id, head, policy, now)
        old_versions = and_(Version.project_id == project_id, Version.number < keep_from)
        # A row is live in some kept version unless it was removed at or before keep_from.
        dead_rows = and_(
            File.project_id == project_id,
            File.removed_in.is_not(None),
            File.removed_in <= keep_from,
        )
        versions = session.scalar(select(func.count()).select_from(Version).where(old_versions))
        if not versions:
            return
        rows = session.scalar(select(func.count()).select_from(File).where(dead_rows)) or 0
        if policy.dry_run:
            pruned_refs.update(session.scalars(select(File.digest).where(dead_rows)))
        else:
            session.execute(delete(Version).where(old_versions))
            session.execute(delete(File).where(dead_rows))
    report.versions_pruned += versions
    report.file_rows_deleted += rows
    log.info(
        "project %s: versions before %s pruned (%s versions, %s file rows)",
        project_id,
        keep_from,
        versions,
        rows,
    )


# -- expired uploads -----------------------------------------------------------


def abort_expired_uploads(
    db: Database, store: BlobStore, now: datetime, dry_run: bool, report: GcReport
) -> set[str]:
    """Abort unfinished uploads past ``expires_at`` and delete expired upload rows.

    Returns the digests whose unfinished upload expired (their pending blob
    rows are garbage unless another upload is open).
    """
    abandoned: set[str] = set()
    after = 0
    while True:
        with db.reading() as session:
            rows = session.execute(
                select(
                    Upload.id,
                    Upload.digest,
                    Upload.upload_id,
                    Upload.staging_key,
                    Upload.completed_at,
                )
                .where(Upload.expires_at < now, Upload.id > after)
                .order_by(Upload.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return abandoned
        after = rows[-1].id
        done: list[int] = []
        for row in rows:
            key = row.staging_key or blob_key(row.digest)
            if row.completed_at is None:
                if row.staging_key is None:
                    abandoned.add(row.digest)  # a staging upload proves a stored blob
                if row.upload_id is not None:
                    if not dry_run and not _abort(store, key, row.upload_id):
                        continue  # kept: the next run tries again
                    report.uploads_aborted += 1
            # A staging object is deleted at completion; this catches a PUT never
            # completed, and a delete that failed then.
            if row.staging_key is not None and not dry_run and not _drop(store, key):
                continue
            done.append(row.id)
        if not dry_run:
            with db.writing() as session:
                session.execute(delete(Upload).where(one_of(session, Upload.id, done)))
        report.upload_rows_deleted += len(done)


def _abort(store: BlobStore, key: str, upload_id: str) -> bool:
    try:
        store.abort_multipart(key, upload_id)
    except Exception as e:
        log.warning("could not abort upload %s of %s: %s", upload_id, key, e)
        return False
    return True


def _drop(store: BlobStore, key: str) -> bool:
    try:
        store.delete(key)
    except Exception as e:
        log.warning("could not delete staging object %s: %s", key, e)
        return False
    return True


# -- unreferenced blobs --------------------------------------------------------


def _open_upload(now: datetime) -> Any:
    return exists().where(
        Upload.digest == Blob.digest, Upload.completed_at.is_(None), Upload.expires_at > now
    )


def _unreferenced_candidates(cutoff: datetime, now: datetime) -> Any:
    """Blobs no ``files`` row names that were not used since ``cutoff``: (digest, size)."""
    old = and_(
        Blob.created_at < cutoff, or_(Blob.last_used_at.is_(None), Blob.last_used_at < cutoff)
    )
    candidates = (
        select(Blob.digest, Blob.size)
        .where(
            or_(
                Blob.state == BLOB_DELETING,
                and_(old, Blob.state == BLOB_PRESENT),
                and_(old, Blob.state == BLOB_PENDING, ~_open_upload(now)),
            ),
            ~exists().where(File.digest == Blob.digest),
        )
        .execution_options(yield_per=BATCH)
    )
    return candidates


def delete_unreferenced_blobs(
    db: Database, store: BlobStore, cutoff: datetime, now: datetime, report: GcReport
) -> None:
    """Delete blobs no ``files`` row names that were not used since ``cutoff``."""
    with db.reading() as session:
        # One streaming query (one anti-join), each batch decided in its own transaction.
        for part in session.execute(_unreferenced_candidates(cutoff, now)).partitions():
            _delete_blobs(db, store, [d for d, _ in part], cutoff, now, report)


def count_collectable_blobs(
    db: Database,
    cutoff: datetime,
    now: datetime,
    pruned_refs: Counter[str],
    abandoned: set[str],
    report: GcReport,
) -> None:
    """Count (dry run) the blobs the real run would delete, by the real run's rules.

    Those unreferenced now, plus those whose every ``files`` row pruning would
    delete, plus the pending blobs of expired uploads; each decided by
    :func:`_collectable` as :func:`_mark_deleting` decides it.
    """
    counted: set[str] = set()
    with db.reading() as session:
        for part in session.execute(_unreferenced_candidates(cutoff, now)).partitions():
            counted.update(digest for digest, _ in part)
            report.blobs_deleted += len(part)
            report.bytes_deleted += sum(size for _, size in part)
        rest = sorted((set(pruned_refs) | abandoned) - counted)
        for batch in chunked(rest, BATCH):
            rows = session.execute(
                select(
                    Blob.digest, Blob.size, Blob.state, Blob.created_at, Blob.last_used_at
                ).where(key_in(session, Blob.digest, list(batch)))
            ).all()
            refs = {
                digest: count
                for digest, count in session.execute(
                    select(File.digest, func.count())
                    .where(one_of(session, File.digest, list(batch)))
                    .group_by(File.digest)
                )
            }
            uploading = _uploading(session, batch, now)
            for row in rows:
                if refs.get(row.digest, 0) > pruned_refs[row.digest]:
                    continue  # a kept version still names it
                busy = row.digest in uploading
                if _collectable(row, cutoff, busy) or (
                    row.digest in abandoned and _collectable(row, None, busy)
                ):
                    report.blobs_deleted += 1
                    report.bytes_deleted += row.size


def _delete_blobs(
    db: Database,
    store: BlobStore,
    digests: Sequence[str],
    cutoff: datetime | None,
    now: datetime,
    report: GcReport,
) -> None:
    """The three steps for a batch; ``cutoff`` None: pending rows need not be old."""
    chosen = _mark_deleting(db, digests, cutoff, now)
    deleted: list[str] = []
    for digest, size in chosen:
        try:
            store.delete(blob_key(digest))
            for key in derived_keys(digest):
                store.delete(key)
        except Exception as e:
            log.warning("could not delete blob %s from the store: %s", digest, e)
            report.blobs_failed += 1
            continue
        deleted.append(digest)
        report.blobs_deleted += 1
        report.bytes_deleted += size
    if deleted:
        with db.writing() as session:
            gone = list(
                session.scalars(
                    delete(Blob)
                    .where(key_in(session, Blob.digest, deleted), Blob.state == BLOB_DELETING)
                    .returning(Blob.digest)
                )
            )
            # Possessions of a deleted blob go with it: whoever stores it again
            # proves it again.
            forget_possessions(session, gone)


def _mark_deleting(
    db: Database, digests: Sequence[str], cutoff: datetime | None, now: datetime
) -> list[tuple[str, int]]:
    """Lock, re-check and mark ``deleting`` the blobs still collectable; ``(digest, size)``."""
    with db.writing() as session:
        rows = session.execute(
            select(Blob.digest, Blob.size, Blob.state, Blob.created_at, Blob.last_used_at)
            .where(key_in(session, Blob.digest, list(digests)))
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return []
        names = [r.digest for r in rows]
        # Separate statements after the lock: on PostgreSQL each sees every commit
        # that finished before the lock was taken.
        referenced = _digests_in(session, select(File.digest).distinct(), File.digest, names)
        uploading = _uploading(session, names, now)
        chosen = [
            (r.digest, r.size)
            for r in rows
            if r.digest not in referenced and _collectable(r, cutoff, r.digest in uploading)
        ]
        if chosen:
            session.execute(
                update(Blob)
                .where(key_in(session, Blob.digest, [d for d, _ in chosen]))
                .values(state=BLOB_DELETING)
            )
    return chosen


def _digests_in(session: Session, query: Any, column: Any, digests: Iterable[str]) -> set[str]:
    return set(session.scalars(query.where(one_of(session, column, list(digests)))))


def _uploading(session: Session, digests: Sequence[str], now: datetime) -> set[str]:
    """Those of ``digests`` an unfinished, unexpired upload is working on."""
    return _digests_in(
        session,
        select(Upload.digest).where(Upload.completed_at.is_(None), Upload.expires_at > now),
        Upload.digest,
        digests,
    )


def _collectable(row: Any, cutoff: datetime | None, uploading: bool) -> bool:
    if row.state == BLOB_DELETING:
        return True
    if row.state == BLOB_PENDING and uploading:
        return False
    if cutoff is None:
        return bool(row.state == BLOB_PENDING)
    used = row.last_used_at
    return bool(row.created_at < cutoff and (used is None or used < cutoff))


def describe(report: GcReport, dry_run: bool) -> list[str]:
    """Human-readable lines of a report."""
    verb = "would delete" if dry_run else "deleted"
    return [
        f"trash: {'would purge' if dry_run else 'purged'} {report.projects_purged} "
        "project(s) past the trash period",
        f"versions: {verb} {report.versions_pruned} "
        f"(and {report.file_rows_deleted} file rows live only in them)",
        f"uploads: {'would abort' if dry_run else 'aborted'} {report.uploads_aborted} expired; "
        f"{verb} {report.upload_rows_deleted} expired upload rows",
        f"blobs: {verb} {report.blobs_deleted} ({report.bytes_deleted} bytes)"
        + (
            f"; {report.blobs_failed} could not be deleted, retried next run"
            if report.blobs_failed
            else ""
        ),
    ]
