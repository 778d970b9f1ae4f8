"""Downloads: presigned GET URLs for digests of one project."""

from __future__ import annotations

from fastapi import APIRouter

from robosync.protocol import DownloadRequest, DownloadResponse, ErrorBody
from robosync.server.routes.deps import AUTH_ERRORS, Caller, DbDep, ProjectId, StoreDep
from robosync.server.services.downloads import presign_downloads
from robosync.server.services.projects import get_project

router = APIRouter(prefix="/v1/projects", tags=["downloads"], responses=AUTH_ERRORS)


@router.post(
    "/{project_id}/downloads",
    response_model=DownloadResponse,
    responses={404: {"model": ErrorBody}},
)
def downloads(
    project_id: ProjectId, body: DownloadRequest, who: Caller, db: DbDep, store: StoreDep
) -> DownloadResponse:
    """A presigned GET per digest; 404 listing digests that are not in the project."""
    with db.reading() as session:
        get_project(session, who, project_id)
    return DownloadResponse(items=presign_downloads(db, store, project_id, body.digests))
