"""Uploads: the dedup check plus presigned part URLs, and verified completion.

No database transaction is held across a call to the object store: each step
reads, talks to the store, then writes in a short transaction.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from robosync.digest import (
    block_count,
    block_layout,
    digest_from_s3_checksum,
    digest_of_block_hashes,
)
from robosync.errors import InvalidInput, RobosyncError, Unavailable
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
from robosync.server.limits import InflightCap, count_inflight_uploads
from robosync.server.services.accounts import Principal
from robosync.server.services.blobs import (
    blob_generation,
    blob_key,
    ensure_pending,
    mark_present,
    present_digests,
    touch_used,
)
from robosync.server.store.base import BlobStore, StoredPart

log = logging.getLogger(__name__)

_GC_BUSY = (
    "garbage collection deleted this blob while it was being completed; ask POST /v1/uploads again"
)


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
    """For each item: ``present``, or the presigned URLs of the parts still to PUT."""
    for i, item in enumerate(items):
        check_item(i, item)
    with db.reading() as session:
        present = present_digests(session, (item.digest for item in items))
        open_uploads = _open_uploads(session, who, {i.digest for i in items} - present)
        new = {i.digest for i in items} - present - set(open_uploads)
        if new:
            inflight = count_inflight_uploads(session, who.user_id, policy.presign_window_seconds)
            policy.inflight_cap.check(inflight, len(new))
    plans: dict[str, UploadPlan] = {}
    new_rows: list[Upload] = []
    for item in items:
        if item.digest in plans:
            continue
        if item.digest in present:
            plans[item.digest] = UploadPlan(digest=item.digest, status="present")
            continue
        plan, row = _plan_one(store, who, item, open_uploads.get(item.digest), policy)
        plans[item.digest] = plan
        if row is not None:
            new_rows.append(row)
    with db.writing() as session:
        ensure_pending(session, {i.digest: i.size for i in items if i.digest not in present})
        touch_used(session, present)
        session.add_all(new_rows)
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


def _plan_one(
    store: BlobStore,
    who: Principal,
    item: UploadItem,
    existing: Upload | None,
    policy: UploadPolicy,
) -> tuple[UploadPlan, Upload | None]:
    key = blob_key(item.digest)
    blocks = "".join(item.blocks)
    if existing is not None and (existing.size, existing.blocks) != (item.size, blocks):
        existing = None
    layout = block_layout(item.size)
    try:
        if len(layout) == 1:
            req = store.presign_put(key, _b64(item.blocks[0]), item.size)
            part = PresignedPart(
                number=1, offset=0, size=item.size, url=req.url, headers=req.headers
            )
            row = None if existing is not None else _upload_row(who, item, None, policy)
            return UploadPlan(digest=item.digest, status="upload", parts=[part]), row
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
            row = _upload_row(who, item, upload_id, policy)
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
    who: Principal, item: UploadItem, upload_id: str | None, policy: UploadPolicy
) -> Upload:
    now = utcnow()
    return Upload(
        digest=item.digest,
        user_id=who.user_id,
        upload_id=upload_id,
        size=item.size,
        parts=len(item.blocks),
        blocks="".join(item.blocks),
        created_at=now,
        expires_at=now + timedelta(seconds=policy.expiry_seconds),
    )


def complete_uploads(
    db: Database, store: BlobStore, who: Principal, items: list[CompleteItem]
) -> list[CompleteResult]:
    """Complete each upload and mark its blob present only if the store proves it."""
    results = [_complete_one(db, store, who, item) for item in items]
    failed = sum(1 for r in results if r.status == "failed")
    metrics.record_uploads(metrics.UPLOAD_COMPLETED, len(results) - failed)
    metrics.record_uploads(metrics.UPLOAD_FAILED, failed)
    return results


def _complete_one(
    db: Database, store: BlobStore, who: Principal, item: CompleteItem
) -> CompleteResult:
    with db.reading() as session:
        if item.digest in present_digests(session, [item.digest]):
            return CompleteResult(digest=item.digest, status="present")
        upload = session.scalar(
            select(Upload)
            .where(
                Upload.user_id == who.user_id,
                Upload.digest == item.digest,
                Upload.completed_at.is_(None),
                Upload.upload_id.is_(None)
                if item.upload_id is None
                else Upload.upload_id == item.upload_id,
            )
            .order_by(Upload.created_at.desc())
            .limit(1)
        )
        generation = blob_generation(session, item.digest)
    if upload is None:
        return _failed(item, "no upload in progress for this digest; ask POST /v1/uploads again")
    if generation is None:
        with db.writing() as session:
            ensure_pending(session, {item.digest: upload.size})
            generation = blob_generation(session, item.digest)
        if generation is None:
            return _failed(item, _GC_BUSY)
    key = blob_key(item.digest)
    if upload.upload_id is not None:
        problem = _complete_multipart(store, key, upload, item)
        if problem is not None:
            return _failed(item, problem)
    try:
        info = store.head(key)
    except Exception:
        log.exception("object store HEAD failed")
        return _failed(item, "the object store is unavailable; retry completion later")
    if info is None:
        return _failed(item, "the store holds no object for this digest; upload it again")
    problem = _verify(info.size, info.checksum_sha256, upload)
    if problem is not None:
        # A wrong object must never be served under this digest.
        store.delete(key)
        return _failed(item, problem)
    with db.writing() as session:
        if not mark_present(session, item.digest, upload.size, generation=generation):
            return _failed(item, _GC_BUSY)
        session.execute(
            update(Upload)
            .where(Upload.user_id == who.user_id, Upload.digest == item.digest)
            .where(Upload.completed_at.is_(None))
            .values(completed_at=utcnow())
        )
    return CompleteResult(digest=item.digest, status="present")


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
    except Exception as e:
        # A retried completion finds the upload already done: the HEAD decides.
        log.info("complete_multipart of %s failed: %s", key, e)
        if store.head(key) is None:
            return f"the store refused to complete the upload: {e}"
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
    return CompleteResult(digest=item.digest, status="failed", error=reason)
