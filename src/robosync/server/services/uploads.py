"""Uploads: the dedup check plus presigned part URLs, and verified completion.

No database transaction is held across a call to the object store: each step
reads, talks to the store, then writes in a short transaction.
"""

from __future__ import annotations

import base64
import functools
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from robosync.digest import (
    block_count,
    block_layout,
    digest_from_s3_checksum,
    digest_of_block_hashes,
)
from robosync.errors import InvalidInput, NotFound, RobosyncError, Unavailable
from robosync.protocol import (
    CompleteItem,
    CompleteResult,
    PresignedPart,
    UploadItem,
    UploadPlan,
)
from robosync.server import metrics
from robosync.server.db.engine import Database
from robosync.server.db.models import Upload, utcnow
from robosync.server.db.queries import table_of
from robosync.server.limits import InflightCap, count_inflight_uploads
from robosync.server.services.accounts import Principal
from robosync.server.services.blobs import (
    blob_generations,
    blob_key,
    ensure_pending,
    mark_present_many,
    present_digests,
    touch_used,
)
from robosync.server.services.possession import possessed_digests, record_possessions
from robosync.server.store.base import BlobStore, StoredPart

log = logging.getLogger(__name__)

_GC_BUSY = (
    "garbage collection deleted this blob while it was being completed; ask POST /v1/uploads again"
)
_UPLOAD_GONE = (
    "the store no longer has this upload (another completion of it finished first, e.g. "
    "that of a push killed while completing); ask POST /v1/uploads again"
)
_STORED_MEANWHILE = (
    "another upload stored this blob first, so this one proves nothing; "
    "ask POST /v1/uploads again (you will be asked for a proof upload)"
)
# Store calls (complete, checksum HEAD, delete) of one completion batch run in
# this many threads: each is one round trip to the store, ~5-20 ms.
COMPLETE_WORKERS = 8
# Threads shared by the completions of all requests of one API process.
PROVER_THREADS = 4 * COMPLETE_WORKERS
_IN_BATCH = 1000


@dataclass(frozen=True)
class UploadPolicy:
    """How long an unfinished upload may be resumed, and how many may be in flight per user."""

    expiry_seconds: int
    inflight_cap: InflightCap = InflightCap(0)
    presign_window_seconds: int = 900


def _b64(hex_hash: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_hash)).decode("ascii")


def check_item(index: int, item: UploadItem) -> None:
    """Refuse an item whose size, block count and digest do not agree."""
    expected = block_count(item.size)
    if len(item.blocks) != expected:
        raise InvalidInput(
            f"item {index}: {item.size} bytes make {expected} block(s), not {len(item.blocks)}",
            {"item": index, "digest": item.digest},
        )
    computed = digest_of_block_hashes(bytes.fromhex(b) for b in item.blocks)
    if computed != item.digest:
        raise InvalidInput(
            f"item {index}: digest {item.digest} is not the hash of its block hashes ({computed})",
            {"item": index, "digest": item.digest},
        )


def plan_uploads(
    db: Database, store: BlobStore, who: Principal, items: list[UploadItem], policy: UploadPolicy
) -> list[UploadPlan]:
    """For each item: ``present``, or the presigned URLs of the parts still to PUT.

    ``present`` only if the blob is stored *and* the caller possesses it; a
    stored blob the caller does not possess is uploaded again to a staging key
    (proof of possession), so knowing a digest never lends its bytes.
    """
    for i, item in enumerate(items):
        check_item(i, item)
    digests = {item.digest for item in items}
    with db.reading() as session:
        stored = present_digests(session, digests)
        present = possessed_digests(session, who.user_id, stored) if stored else set()
        proving = stored - present
        open_uploads = {
            digest: row
            for digest, row in _open_uploads(session, who, digests - present).items()
            # A staging upload proves a stored blob; the blob's own key only a new one.
            if (row.staging_key is not None) == (digest in proving)
        }
        new = digests - present - set(open_uploads)
        if new:
            inflight = count_inflight_uploads(session, who.user_id, policy.presign_window_seconds)
            policy.inflight_cap.check(inflight, len(new))
    plans: dict[str, UploadPlan] = {}
    new_rows: list[dict[str, object]] = []
    singles: dict[str, tuple[UploadItem, str]] = {}  # new one-PUT uploads, signed together
    for item in items:
        if item.digest in plans or item.digest in singles:
            continue
        if item.digest in present:
            plans[item.digest] = UploadPlan(digest=item.digest, status="present")
            continue
        existing = open_uploads.get(item.digest)
        if existing is not None and not _resumes(existing, item):
            existing = None
        if existing is None and len(item.blocks) == 1:
            proof = item.digest in proving
            key = staging_key() if proof else blob_key(item.digest)
            singles[item.digest] = (item, key)
            new_rows.append(_upload_row(who, item, None, key if proof else None, policy))
            continue
        plan, row = _plan_one(store, who, item, existing, policy, item.digest in proving)
        plans[item.digest] = plan
        if row is not None:
            new_rows.append(row)
    signed = store.presign_puts([(k, _b64(i.blocks[0]), i.size) for i, k in singles.values()])
    for (item, _), req in zip(singles.values(), signed, strict=True):
        part = PresignedPart(number=1, offset=0, size=item.size, url=req.url, headers=req.headers)
        plans[item.digest] = UploadPlan(digest=item.digest, status="upload", parts=[part])
    with db.writing() as session:
        ensure_pending(session, {i.digest: i.size for i in items if i.digest not in stored})
        touch_used(session, stored)
        if new_rows:
            # Values, not ORM objects: nothing reads them back, and the unit of work
            # cost more per row than the insert itself.
            session.execute(insert(table_of(Upload)), new_rows)
    metrics.record_uploads(metrics.UPLOAD_ALREADY_PRESENT, len(present))
    metrics.record_uploads(metrics.UPLOAD_PRESIGNED, len(plans) - len(present))
    return [plans[item.digest] for item in items]


def _open_uploads(session: Session, who: Principal, digests: set[str]) -> dict[str, Upload]:
    if not digests:
        return {}
    rows = session.scalars(
        select(Upload)
        .where(
            Upload.user_id == who.user_id,
            Upload.digest.in_(digests),
            Upload.completed_at.is_(None),
            Upload.expires_at > utcnow(),
        )
        .order_by(Upload.created_at)
    )
    return {row.digest: row for row in rows}  # newest wins


def staging_key() -> str:
    """A fresh staging key for a proof-of-possession upload (never a blob's key)."""
    return f"proofs/{secrets.token_hex(16)}"


def _resumes(upload: Upload, item: UploadItem) -> bool:
    """Whether an open upload session is of this item's very blocks (else a new one)."""
    return (upload.size, upload.blocks) == (item.size, "".join(item.blocks))


def _single_put_stored(store: BlobStore, key: str, item: UploadItem) -> bool:
    """Whether ``key`` already holds this one-block item, by the store's own checksum."""
    info = store.head(key)
    return (
        info is not None and info.size == item.size and info.checksum_sha256 == _b64(item.blocks[0])
    )


def _plan_one(
    store: BlobStore,
    who: Principal,
    item: UploadItem,
    existing: Upload | None,
    policy: UploadPolicy,
    proving: bool,
) -> tuple[UploadPlan, dict[str, object] | None]:
    if existing is not None:
        key = existing.staging_key or blob_key(item.digest)
    else:
        key = staging_key() if proving else blob_key(item.digest)
    staging = key if proving else None
    layout = block_layout(item.size)
    try:
        if len(layout) == 1:
            # A resumed single PUT (new ones are signed together by plan_uploads).
            assert existing is not None
            if _single_put_stored(store, key, item):
                # The store took this PUT before the robot could complete it (e.g.
                # the store went down); completion will verify it.
                part = PresignedPart(
                    number=1, offset=0, size=item.size, url="", headers={}, done=True
                )
            else:
                req = store.presign_put(key, _b64(item.blocks[0]), item.size)
                part = PresignedPart(
                    number=1, offset=0, size=item.size, url=req.url, headers=req.headers
                )
            return UploadPlan(digest=item.digest, status="upload", parts=[part]), None
        done: dict[int, StoredPart] = {}
        row = None
        if existing is not None and existing.upload_id is not None:
            stored = store.list_parts(key, existing.upload_id)
            if stored is None:
                existing = None
            else:
                done = {p.number: p for p in stored}
        if existing is None or existing.upload_id is None:
            upload_id = store.create_multipart(key)
            row = _upload_row(who, item, upload_id, staging, policy)
            done = {}
        else:
            upload_id = existing.upload_id
        parts = []
        for number, (offset, size) in enumerate(layout, start=1):
            stored_part = done.get(number)
            if stored_part is not None and stored_part.size == size:
                parts.append(
                    PresignedPart(
                        number=number,
                        offset=offset,
                        size=size,
                        url="",
                        headers={},
                        done=True,
                        etag=stored_part.etag,
                    )
                )
                continue
            req = store.presign_part(key, upload_id, number, _b64(item.blocks[number - 1]), size)
            parts.append(
                PresignedPart(
                    number=number, offset=offset, size=size, url=req.url, headers=req.headers
                )
            )
    except RobosyncError:
        raise
    except Exception as e:
        log.exception("object store failed while planning an upload")
        raise Unavailable("the object store is unavailable; retry later") from e
    return UploadPlan(digest=item.digest, status="upload", upload_id=upload_id, parts=parts), row


def _upload_row(
    who: Principal,
    item: UploadItem,
    upload_id: str | None,
    staging: str | None,
    policy: UploadPolicy,
) -> dict[str, object]:
    """The ``uploads`` row of a new upload, as values for one multi-row INSERT."""
    now = utcnow()
    return {
        "digest": item.digest,
        "user_id": who.user_id,
        "upload_id": upload_id,
        "staging_key": staging,
        "size": item.size,
        "parts": len(item.blocks),
        "blocks": "".join(item.blocks),
        "created_at": now,
        "expires_at": now + timedelta(seconds=policy.expiry_seconds),
    }


@dataclass
class _Completion:
    """One blob of a completion batch: what the database said, and what the store proved."""

    item: CompleteItem
    upload: Upload | None = None
    generation: datetime | None = None
    size: int = 0  # verified by the store
    problem: str | None = None  # set: the answer is "failed" with this reason
    done: bool = False  # set: the answer is "present" without store work


def complete_uploads(
    db: Database,
    store: BlobStore,
    who: Principal,
    items: list[CompleteItem],
    workers: int = COMPLETE_WORKERS,
) -> list[CompleteResult]:
    """Complete each upload; the blob is present (for the caller) only if the store proves it.

    The whole batch is read in one transaction, the store is asked (complete,
    checksum HEAD) for all blobs at once in a small thread pool, and the
    outcome is written in one transaction.
    """
    unique = list({item.digest: item for item in items}.values())
    jobs = {item.digest: _Completion(item) for item in unique}
    _load_uploads(db, who, jobs)
    todo = [job for job in jobs.values() if job.problem is None and not job.done]
    if todo:
        _prove_all(store, todo, workers)
        _record(db, who, [job for job in todo if job.problem is None])
    by_digest = {
        d: _failed(job.item, job.problem)
        if job.problem is not None
        else CompleteResult(digest=d, status="present")
        for d, job in jobs.items()
    }
    results = [by_digest[item.digest] for item in items]
    failed = sum(1 for r in results if r.status == "failed")
    metrics.record_uploads(metrics.UPLOAD_COMPLETED, len(results) - failed)
    metrics.record_uploads(metrics.UPLOAD_FAILED, failed)
    return results


def _load_uploads(db: Database, who: Principal, jobs: dict[str, _Completion]) -> None:
    """Find each item's upload row and blob generation, in one read (and one write) transaction."""
    digests = list(jobs)
    with db.reading() as session:
        stored = present_digests(session, digests)
        possessed = possessed_digests(session, who.user_id, stored) if stored else set()
        uploads = _unfinished_uploads(session, who, [d for d in digests if d not in possessed])
        generations = blob_generations(session, digests)
    unborn: dict[str, int] = {}
    for digest, job in jobs.items():
        if digest in possessed:
            job.done = True  # a retried completion, or the caller's own blob
            continue
        job.upload = _matching_upload(uploads.get(digest, []), job.item)
        if job.upload is None:
            job.problem = "no upload in progress for this digest; ask POST /v1/uploads again"
        elif job.upload.staging_key is not None:
            if digest not in stored:
                job.problem = _GC_BUSY  # the stored blob it proves was deleted meanwhile
        elif job.upload.upload_id is None and digest in stored:
            # Someone else's object may be what a PUT to the blob's own key
            # left there: only a staging upload can prove this caller's bytes.
            job.problem = _STORED_MEANWHILE
        elif digest in generations:
            job.generation = generations[digest]
        else:
            unborn[digest] = job.upload.size
    if unborn:
        with db.writing() as session:
            ensure_pending(session, unborn)
            generations = blob_generations(session, list(unborn))
        for digest in unborn:
            jobs[digest].generation = generations.get(digest)
            if jobs[digest].generation is None:
                jobs[digest].problem = _GC_BUSY


def _unfinished_uploads(
    session: Session, who: Principal, digests: list[str]
) -> dict[str, list[Upload]]:
    """The caller's unfinished upload rows of these digests, newest first."""
    found: dict[str, list[Upload]] = {}
    for i in range(0, len(digests), _IN_BATCH):
        rows = session.scalars(
            select(Upload)
            .where(
                Upload.user_id == who.user_id,
                Upload.digest.in_(digests[i : i + _IN_BATCH]),
                Upload.completed_at.is_(None),
            )
            .order_by(Upload.created_at.desc(), Upload.id.desc())
        )
        for row in rows:
            found.setdefault(row.digest, []).append(row)
    return found


def _matching_upload(rows: list[Upload], item: CompleteItem) -> Upload | None:
    for row in rows:
        if row.upload_id == item.upload_id:
            return row
    return None


def _prove_all(store: BlobStore, jobs: list[_Completion], workers: int) -> None:
    """:func:`_prove` every job, ``workers`` at a time, on threads shared by all requests.

    Starting a pool of threads for each completion cost as much of the API's CPU as
    the database work of a thousand blobs (``py-spy --gil``); the shared pool keeps
    them. Each call takes at most ``workers`` of its threads, so one large batch
    cannot hold every thread while a small one waits.
    """
    n = min(workers, len(jobs))
    if n == 1:
        for job in jobs:
            _prove(store, job)
        return
    pool = _prover_pool()
    for future in [pool.submit(_prove_each, store, jobs[i::n]) for i in range(n)]:
        future.result()


def _prove_each(store: BlobStore, jobs: list[_Completion]) -> None:
    for job in jobs:
        _prove(store, job)


@functools.cache
def _prover_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(PROVER_THREADS, thread_name_prefix="complete")


def _prove(store: BlobStore, job: _Completion) -> None:
    """Ask the store to complete and prove the upload; sets ``job.problem`` or ``job.size``."""
    upload = job.upload
    assert upload is not None
    key = upload.staging_key or blob_key(upload.digest)
    try:
        if upload.upload_id is not None:
            job.problem = _complete_multipart(store, key, upload, job.item)
            if job.problem is not None:
                return
        info = store.head(key)
    except Exception:
        log.exception("object store failed while completing an upload")
        job.problem = "the object store is unavailable; retry completion later"
        return
    if info is None:
        job.problem = "the store holds no object for this digest; upload it again"
    else:
        job.problem = _verify(info.size, info.checksum_sha256, upload)
        job.size = info.size
    if upload.staging_key is not None or job.problem is not None:
        # A staging object has served its purpose; a wrong object must never be
        # served under this digest.
        _delete_quietly(store, key)


def _delete_quietly(store: BlobStore, key: str) -> None:
    try:
        store.delete(key)
    except Exception as e:
        # Garbage collection deletes expired staging objects; a wrong blob is
        # never marked present, so a leftover is harmless.
        log.warning("could not delete %s: %s", key, e)


def _record(db: Database, who: Principal, proven: list[_Completion]) -> None:
    """Mark proven blobs present and possessed by the caller, in one transaction."""
    if not proven:
        return
    with db.writing() as session:
        canonical = [j for j in proven if j.upload is not None and j.upload.staging_key is None]
        fresh = mark_present_many(
            session,
            {j.item.digest: (j.size, j.generation) for j in canonical if j.item.upload_id},
        ) | mark_present_many(
            session,
            {j.item.digest: (j.size, j.generation) for j in canonical if not j.item.upload_id},
            only_pending=True,
        )
        staged = [j.item.digest for j in proven if j.upload is not None and j.upload.staging_key]
        # A proof counts only while the blob it proves is stored (garbage
        # collection cannot choose it while this lock is held).
        ok = fresh | present_digests(session, staged, lock=True)
        for job in proven:
            if job.item.digest not in ok:
                single = job.item.upload_id is None and job in canonical
                job.problem = _STORED_MEANWHILE if single else _GC_BUSY
        if ok:
            record_possessions(session, who.user_id, ok)
            session.execute(
                update(Upload)
                .where(
                    Upload.user_id == who.user_id,
                    Upload.digest.in_(sorted(ok)),
                    Upload.completed_at.is_(None),
                )
                .values(completed_at=utcnow())
                .execution_options(synchronize_session=False)
            )


def _complete_multipart(
    store: BlobStore, key: str, upload: Upload, item: CompleteItem
) -> str | None:
    numbers = [p.number for p in item.parts]
    if numbers != list(range(1, upload.parts + 1)):
        return f"expected parts 1..{upload.parts} in order, got {numbers[:20]}"
    blocks = [upload.blocks[i : i + 64] for i in range(0, len(upload.blocks), 64)]
    parts = [(p.number, p.etag, _b64(blocks[p.number - 1])) for p in item.parts]
    assert upload.upload_id is not None
    try:
        store.complete_multipart(key, upload.upload_id, parts)
    except NotFound:
        # NoSuchUpload: a concurrent completion of this same upload consumed it
        # (its answer may still be on the way). Not a proof for this call; a
        # fresh plan finds the blob present, or opens a new upload.
        return _UPLOAD_GONE
    except Exception as e:
        # Only this call's own completion proves the caller's parts: an object
        # already under the key may be anybody's. (A retry after a success the
        # caller did not hear of found the blob possessed and never got here.)
        log.info("complete_multipart of %s failed: %s", key, e)
        return f"the store refused to complete the upload ({e}); ask POST /v1/uploads again"
    return None


def _verify(size: int, checksum: str | None, upload: Upload) -> str | None:
    if size != upload.size:
        return f"stored object has {size} bytes, expected {upload.size}"
    if checksum is None:
        return "the store recorded no SHA-256 checksum for the object"
    digest, parts = digest_from_s3_checksum(checksum)
    if digest != upload.digest:
        return f"stored object's checksum gives digest {digest}, expected {upload.digest}"
    if upload.upload_id is not None and parts != upload.parts:
        return f"stored object has {parts} parts, expected {upload.parts}"
    return None


def _failed(item: CompleteItem, reason: str) -> CompleteResult:
    # Lost races, not bad bytes: planning again gives an upload that succeeds.
    retry = reason in (_STORED_MEANWHILE, _GC_BUSY, _UPLOAD_GONE)
    return CompleteResult(digest=item.digest, status="failed", error=reason, retry=retry)
