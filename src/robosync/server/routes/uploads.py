"""Uploads: dedup check + presigned parts, and verified completion."""

from __future__ import annotations

from fastapi import APIRouter

from robosync.protocol import (
    CompleteRequest,
    CompleteResponse,
    ErrorBody,
    UploadRequest,
    UploadResponse,
)
from robosync.server.limits import InflightCap
from robosync.server.routes.deps import AUTH_ERRORS, Caller, DbDep, SettingsDep, StoreDep
from robosync.server.services.quota import check_push
from robosync.server.services.uploads import UploadPolicy, complete_uploads, plan_uploads

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=AUTH_ERRORS)


@router.post(
    "",
    response_model=UploadResponse,
    responses={
        400: {"model": ErrorBody},
        413: {"model": ErrorBody, "description": "quota_exceeded: details.quota, details.used"},
    },
)
def request_uploads(
    body: UploadRequest, who: Caller, db: DbDep, store: StoreDep, settings: SettingsDep
) -> UploadResponse:
    """For each blob: ``present`` (already stored), or presigned URLs, one per 8 MiB block;
    413 before any of that if ``quota`` is given and the push does not fit it."""
    if body.quota is not None:
        with db.reading() as session:
            check_push(session, who, body.quota.project_id, body.quota.added_bytes)
    policy = UploadPolicy(
        expiry_seconds=settings.upload_expiry_seconds,
        inflight_cap=InflightCap(settings.max_inflight_uploads),
        presign_window_seconds=settings.presign_expiry_seconds,
    )
    return UploadResponse(items=plan_uploads(db, store, who, body.items, policy))


@router.post("/complete", response_model=CompleteResponse)
def complete(body: CompleteRequest, who: Caller, db: DbDep, store: StoreDep) -> CompleteResponse:
    """Complete uploads; a blob is present only once the store proved its size and digest."""
    return CompleteResponse(items=complete_uploads(db, store, who, body.items))
