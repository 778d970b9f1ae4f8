"""Projects: create, list, info, history, manifest and changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from robosync.protocol import (
    NDJSON,
    PROJECT_NAME_PATTERN,
    VERSION_HEADER,
    ErrorBody,
    ProjectCreate,
    ProjectInfo,
    ProjectList,
    VersionList,
)
from robosync.server.routes.deps import AUTH_ERRORS, Caller, DbDep, ProjectId
from robosync.server.routes.ndjson_docs import changes_response, manifest_response
from robosync.server.services import projects
from robosync.server.services.manifests import iter_changes, iter_manifest

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=AUTH_ERRORS)
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
}
_PRUNED: dict[int | str, dict[str, object]] = {
    410: {"model": ErrorBody, "description": "the version was pruned by garbage collection"},
}


@router.post("", status_code=201, response_model=ProjectInfo, responses={409: {"model": ErrorBody}})
def create_project(body: ProjectCreate, who: Caller, db: DbDep) -> ProjectInfo:
    """Create an empty project (version 0)."""
    with db.writing() as session:
        return projects.project_info(projects.create_project(session, who, body.name))


@router.get("", response_model=ProjectList)
def list_projects(
    who: Caller,
    db: DbDep,
    name: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=PROJECT_NAME_PATTERN)
    ] = None,
) -> ProjectList:
    """The caller's projects, optionally only the one named ``name``."""
    with db.reading() as session:
        rows = projects.list_projects(session, who, name)
        return ProjectList(projects=[projects.project_info(p) for p in rows])


@router.get("/{project_id}", response_model=ProjectInfo, responses=_ERRORS)
def project_info(project_id: ProjectId, who: Caller, db: DbDep) -> ProjectInfo:
    """Head version, file count and bytes of one project."""
    with db.reading() as session:
        return projects.project_info(projects.get_project(session, who, project_id))


@router.get("/{project_id}/versions", response_model=VersionList, responses=_ERRORS)
def list_versions(project_id: ProjectId, who: Caller, db: DbDep) -> VersionList:
    """The project's history, newest first."""
    with db.reading() as session:
        project = projects.get_project(session, who, project_id)
        return VersionList(versions=projects.list_versions(session, project))


@router.get(
    "/{project_id}/manifest",
    response_class=Response,
    responses={**_ERRORS, **_PRUNED, **manifest_response()},
)
def manifest(
    project_id: ProjectId,
    who: Caller,
    db: DbDep,
    version: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    """NDJSON stream of ``{path, digest, size}`` at ``version`` (default head), by path."""
    with db.reading() as session:
        head = projects.get_project(session, who, project_id).head_version
        served = head if version is None else version
        projects.check_version_kept(session, project_id, served, head)
    return StreamingResponse(
        iter_manifest(db, project_id, served),
        media_type=NDJSON,
        headers={VERSION_HEADER: str(served)},
    )


@router.get(
    "/{project_id}/changes",
    response_class=Response,
    responses={**_ERRORS, **_PRUNED, **changes_response()},
)
def changes(
    project_id: ProjectId, who: Caller, db: DbDep, since: Annotated[int, Query(ge=0)]
) -> StreamingResponse:
    """NDJSON put/delete lines that take version ``since`` to the head."""
    with db.reading() as session:
        head = projects.get_project(session, who, project_id).head_version
        projects.check_version_kept(session, project_id, since, head)
    return StreamingResponse(
        iter_changes(db, project_id, since, head),
        media_type=NDJSON,
        headers={VERSION_HEADER: str(head)},
    )
