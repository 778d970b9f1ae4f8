"""Commits: NDJSON body, compare-and-swap on the head, idempotent retries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from robosync.errors import InvalidInput
from robosync.protocol import IDEMPOTENCY_HEADER, CommitResult, ErrorBody
from robosync.server.access import Role
from robosync.server.routes.deps import AUTH_ERRORS, Caller, DbDep, ProjectId, SettingsDep
from robosync.server.routes.ndjson_docs import commit_request
from robosync.server.services import commits
from robosync.server.services.commit_body import BodyLimits, read_commit
from robosync.server.services.projects import get_project

router = APIRouter(prefix="/v1/projects", tags=["commits"], responses=AUTH_ERRORS)


@router.post(
    "/{project_id}/commits",
    status_code=201,
    response_model=CommitResult,
    openapi_extra=commit_request(),
    responses={
        400: {"model": ErrorBody},
        403: {"model": ErrorBody, "description": "the caller may read but not push"},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody, "description": "head moved: details.head_version"},
        413: {"model": ErrorBody, "description": "too large, or quota_exceeded"},
        422: {"model": ErrorBody, "description": "missing_blobs (details.missing) or case twins"},
    },
)
async def create_commit(
    project_id: ProjectId,
    request: Request,
    who: Caller,
    db: DbDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
) -> JSONResponse:
    """Apply put/delete lines on top of ``base_version``; 201 with the new version."""

    def _check_project() -> None:
        with db.reading() as session:
            get_project(session, who, project_id, Role.WRITE)

    await run_in_threadpool(_check_project)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise InvalidInput("Idempotency-Key must be 1 to 200 characters")
    limits = BodyLimits(
        max_lines=settings.max_commit_lines,
        max_line_bytes=settings.max_line_bytes,
        max_body_bytes=settings.max_body_bytes,
    )
    delta = await read_commit(request.stream(), limits)
    answer = await run_in_threadpool(commits.commit, db, who, project_id, delta, idempotency_key)
    return JSONResponse(answer.body, status_code=answer.status)
