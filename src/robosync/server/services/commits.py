"""The compare-and-swap commit: one transaction, applied only if the base is the head.

``UPDATE projects SET head_version = base + 1 WHERE id = … AND head_version =
base`` runs first; only when it changed one row is the delta applied (close
replaced/deleted live rows, insert new ones, update counts, add the version
row, remember the answer under the Idempotency-Key) — all in that same
transaction, so a concurrent commit on the same base waits on the row and then
finds the head moved (409).

Decisions: deleting a path that is not live is a no-op (the commit states the
end result, and "absent" already holds); a put of the exact content a path
already has is a no-op too. A version must be checkable out: new paths may
not be case twins of live ones, nor files where a folder is (or the reverse;
``checkout.py``); the transaction rolls back and the answer is 422.
``files_added`` counts paths whose content was added or changed
(``files_modified`` those of them that changed), ``files_removed`` paths that
disappeared. The version records the robot name the commit header gives (the
client's ``ROBOSYNC_ROBOT`` or folder name), else the token's robot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlalchemy.orm import Session

from robosync.errors import ConflictError, InvalidInput, MissingBlobs, Unprocessable
from robosync.paths import case_key
from robosync.protocol import CommitResult
from robosync.server import metrics
from robosync.server.access import Role, authorize
from robosync.server.db.engine import Database
from robosync.server.db.models import (
    BLOB_PRESENT,
    Blob,
    File,
    IdempotencyKey,
    Project,
    Token,
    Version,
    utcnow,
)
from robosync.server.db.queries import chunked, key_in, one_of
from robosync.server.services import audit
from robosync.server.services.accounts import Principal
from robosync.server.services.blobs import touch_used
from robosync.server.services.checkout import check_no_file_folder_clash
from robosync.server.services.commit_body import CommitDelta
from robosync.server.services.possession import possessed_digests
from robosync.server.services.quota import check_quota

IN_BATCH = 1000
INSERT_BATCH = 2000
MAX_LISTED_MISSING = 10_000

T = TypeVar("T")


@dataclass(frozen=True)
class StoredAnswer:
    """A commit answer: HTTP status and JSON body."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class _Live:
    id: int
    path: str
    digest: str
    size: int


def commit(
    db: Database, who: Principal, project_id: int, delta: CommitDelta, key: str | None
) -> StoredAnswer:
    """Apply ``delta`` to the project if its base is the head; the answer to send."""
    if key is not None:
        stored = _stored_answer(db, who, project_id, key, delta)
        if stored is not None:
            return stored
    digests = {digest for digest, _ in delta.puts.values()}
    # Touched in its own short transaction, before the check: from here garbage
    # collection spares these blobs for its grace period (see blobs.touch_used).
    for batch in chunked(sorted(digests), IN_BATCH):
        with db.writing() as session:
            touch_used(session, batch)
    _check_blobs_present(db, who, digests)
    try:
        with db.writing() as session:
            # Again under a row lock that garbage collection's FOR UPDATE conflicts
            # with: a blob it chose for deletion after the check above is missing now.
            _check_put_sizes(delta, _require_present(session, digests, lock=True))
            project = authorize(session, who.user_id, project_id, Role.WRITE).project
            before = project.total_bytes
            result = _apply(session, who, project_id, delta)
            check_quota(session, project.owner_id, result.total_bytes - before, applied=True)
            _note_push(session, who, project, result)
            answer = StoredAnswer(201, result.model_dump())
            if key is not None:
                session.add(
                    IdempotencyKey(
                        user_id=who.user_id,
                        project_id=project_id,
                        key=key,
                        request_hash=delta.body_sha256,
                        status=answer.status,
                        body=json.dumps(answer.body),
                    )
                )
        metrics.record_commit(sum(size for _, size in delta.puts.values()))
        return answer
    except (ConflictError, DbIntegrityError) as e:
        # A concurrent attempt with the same key may have won the race.
        if key is not None:
            stored = _stored_answer(db, who, project_id, key, delta)
            if stored is not None:
                return stored
        if isinstance(e, ConflictError):
            metrics.CONFLICTS.inc()
        raise


def _stored_answer(
    db: Database, who: Principal, project_id: int, key: str, delta: CommitDelta
) -> StoredAnswer | None:
    with db.reading() as session:
        row = session.get(IdempotencyKey, (who.user_id, project_id, key))
        if row is None:
            return None
        if row.request_hash != delta.body_sha256:
            raise Unprocessable(
                "this Idempotency-Key was used for a different commit body; use a new key",
                {"idempotency_key": key},
            )
        return StoredAnswer(row.status, json.loads(row.body))


def _check_blobs_present(db: Database, who: Principal, digests: set[str]) -> None:
    """Refuse the commit unless every blob is present *for the caller*.

    A blob the caller does not possess (see ``services/possession.py``) is
    reported missing exactly like one that is not stored, so a digest learnt
    elsewhere neither commits nor reveals that the deployment has it.
    """
    with db.reading() as session:
        possessed = possessed_digests(session, who.user_id, digests)
        _require_present(session, digests, not_possessed=digests - possessed)


def _require_present(
    session: Session,
    digests: set[str],
    *,
    lock: bool = False,
    not_possessed: set[str] | None = None,
) -> dict[str, int]:
    """The size of each digest's blob; :class:`MissingBlobs` unless every one is present.

    With ``lock``, the rows found are held FOR KEY SHARE (PostgreSQL) until the
    transaction ends: garbage collection marks a blob for deletion only under
    FOR UPDATE, so it cannot take a blob this commit is about to reference.
    SQLite write transactions exclude each other anyway.
    """
    missing: list[str] = []
    sizes: dict[str, int] = {}
    hidden = not_possessed or set()
    for batch in chunked(sorted(digests), IN_BATCH):
        query = select(Blob.digest, Blob.size).where(
            key_in(session, Blob.digest, batch), Blob.state == BLOB_PRESENT
        )
        if lock:
            query = query.with_for_update(read=True, key_share=True)
        found = {d: size for d, size in session.execute(query) if d not in hidden}
        sizes.update(found)
        missing.extend(d for d in batch if d not in found)
    if missing:
        raise MissingBlobs(
            f"{len(missing)} blob(s) are not uploaded yet; upload them and commit again",
            {"missing": missing[:MAX_LISTED_MISSING], "missing_count": len(missing)},
        )
    return sizes


def _check_put_sizes(delta: CommitDelta, sizes: dict[str, int]) -> None:
    """Refuse a put whose size is not the size of the (present) blob it names."""
    for path, (digest, size) in delta.puts.items():
        if sizes.get(digest, size) != size:
            raise InvalidInput(
                f"path {path!r}: size {size} does not match the {sizes[digest]} bytes "
                f"of blob {digest}",
                {"path": path, "digest": digest, "size": size, "blob_size": sizes[digest]},
            )


def _apply(session: Session, who: Principal, project_id: int, delta: CommitDelta) -> CommitResult:
    base = delta.header.base_version
    new = base + 1
    now = utcnow()
    moved = session.execute(
        update(Project)
        .where(Project.id == project_id, Project.head_version == base)
        .values(head_version=new, updated_at=now)
    )
    if getattr(moved, "rowcount", 0) != 1:
        head = session.scalar(select(Project.head_version).where(Project.id == project_id))
        raise ConflictError(
            f"base version {base} is not the head ({head}); fetch changes, merge, commit again",
            {"head_version": head, "base_version": base},
        )
    live = _live_rows(session, project_id, delta.paths())
    inserts = [
        (path, digest, size)
        for path, (digest, size) in delta.puts.items()
        if path not in live or (live[path].digest, live[path].size) != (digest, size)
    ]
    closing = [live[p] for p, *_ in inserts if p in live]
    closing += [live[p] for p in delta.deletes if p in live]
    new_paths = [p for p, *_ in inserts if p not in live]
    _check_case_twins(session, project_id, new_paths, delta)

    for batch in chunked([row.id for row in closing], IN_BATCH):
        # project_id first: on PostgreSQL it selects the one partition (and the
        # (project_id, id) primary key) instead of probing every partition.
        session.execute(
            update(File)
            .where(File.project_id == project_id, one_of(session, File.id, batch))
            .values(removed_in=new)
        )
    _insert_files(session, project_id, inserts, new)
    check_no_file_folder_clash(session, project_id, new_paths)
    project = session.get_one(Project, project_id)
    project.file_count += len(inserts) - len(closing)
    project.total_bytes += sum(s for *_, s in inserts) - sum(r.size for r in closing)
    result = CommitResult(
        version=new,
        files_added=len(inserts),
        files_removed=sum(1 for p in delta.deletes if p in live),
        files_modified=sum(1 for p, *_ in inserts if p in live),
        file_count=project.file_count,
        total_bytes=project.total_bytes,
    )
    session.add(
        Version(
            project_id=project_id,
            number=new,
            robot=delta.header.robot or who.robot,
            message=delta.header.message,
            created_at=now,
            files_added=result.files_added,
            files_removed=result.files_removed,
            files_modified=result.files_modified,
            file_count=result.file_count,
            total_bytes=result.total_bytes,
        )
    )
    session.flush()
    return result


def _insert_files(
    session: Session, project_id: int, rows: list[tuple[str, str, int]], version: int
) -> None:
    """Insert the new live rows ``(path, digest, size)``, added in ``version``.

    On PostgreSQL by ``COPY`` (psycopg writes the rows in C, no statement per
    batch, no SQLAlchemy parameter processing); elsewhere by multi-row INSERTs.
    """
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        dbapi = session.connection().connection.driver_connection
        assert dbapi is not None  # a checked-out connection always has its driver's
        with (
            dbapi.cursor() as cursor,
            cursor.copy(
                "COPY files (project_id, path, path_key, digest, size, added_in) FROM STDIN"
            ) as copy,
        ):
            for path, digest, size in rows:
                copy.write_row((project_id, path, case_key(path), digest, size, version))
        return
    for batch in chunked(rows, INSERT_BATCH):
        session.execute(
            insert(File),
            [
                {
                    "project_id": project_id,
                    "path": p,
                    "path_key": case_key(p),
                    "digest": d,
                    "size": s,
                    "added_in": version,
                    "removed_in": None,
                }
                for p, d, s in batch
            ],
        )


def _note_push(session: Session, who: Principal, project: Project, result: CommitResult) -> None:
    """The audit row of a commit, and the pushing token's ``last_push_at``."""
    if who.token_id is not None:
        session.execute(update(Token).where(Token.id == who.token_id).values(last_push_at=utcnow()))
    audit.record(
        session,
        audit.Actor.of(who),
        audit.COMMIT,
        project,
        version=result.version,
        files_added=result.files_added,
        files_removed=result.files_removed,
    )


def _live_rows(session: Session, project_id: int, paths: list[str]) -> dict[str, _Live]:
    live: dict[str, _Live] = {}
    for batch in chunked(paths, IN_BATCH):
        for row in session.execute(
            select(File.id, File.path, File.digest, File.size).where(
                File.project_id == project_id,
                File.removed_in.is_(None),
                one_of(session, File.path, batch),
            )
        ):
            live[row.path] = _Live(row.id, row.path, row.digest, row.size)
    return live


def _check_case_twins(
    session: Session, project_id: int, new_paths: list[str], delta: CommitDelta
) -> None:
    """Refuse a new path whose case key another path of the result already has."""
    by_key: dict[str, str] = {}
    for path in new_paths:
        key = case_key(path)
        if key in by_key:
            _twins(by_key[key], path)
        by_key[key] = path
    for batch in chunked(list(by_key), IN_BATCH):
        for other, key in session.execute(
            select(File.path, File.path_key).where(
                File.project_id == project_id,
                File.removed_in.is_(None),
                one_of(session, File.path_key, batch),
            )
        ):
            if other != by_key[key] and other not in delta.deletes:
                _twins(other, by_key[key])


def _twins(a: str, b: str) -> None:
    raise Unprocessable(
        f"paths {a!r} and {b!r} differ only in case; a project must stay usable "
        "on case-insensitive file systems, so rename one",
        {"paths": [a, b]},
    )
