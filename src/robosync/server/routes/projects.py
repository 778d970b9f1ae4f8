"""Projects: create, list, info, rename, delete/restore, history, manifest and changes.

Every route reaches its project through ``access.authorize`` (via
``services.projects``): a project the caller may not read is 404.
"""

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
    ProjectRename,
    QuotaCheck,
    QuotaInfo,
    VersionList,
)
from robosync.server.access import Role, authorize
from robosync.server.routes.deps import AUTH_ERRORS, Caller, DbDep, ProjectId
from robosync.server.routes.ndjson_docs import changes_response, manifest_response
from robosync.server.services import projects
from robosync.server.services.manifests import iter_changes, iter_manifest
from robosync.server.services.quota import check_push

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=AUTH_ERRORS)
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
}
_ADMIN: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    403: {"model": ErrorBody, "description": "the caller is a member but not an admin"},
}
_WRITE: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    403: {"model": ErrorBody, "description": "the caller may read but not push"},
}
_PRUNED: dict[int | str, dict[str, object]] = {
    410: {"model": ErrorBody, "description": "the version was pruned by garbage collection"},
}


@router.post("", status_code=201, response_model=ProjectInfo, responses={409: {"model": ErrorBody}})
def create_project(body: ProjectCreate, who: Caller, db: DbDep) -> ProjectInfo:
    """Create an empty project (version 0) owned by the caller."""
    with db.writing() as session:
        created = projects.create_project(session, who, body.name)
        return projects.project_info(created, who.user_name, Role.ADMIN)


@router.get("", response_model=ProjectList)
def list_projects(
    who: Caller,
    db: DbDep,
    name: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=PROJECT_NAME_PATTERN)
    ] = None,
    owner: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    trash: Annotated[
        bool, Query(description="list the trash instead (projects you administer)")
    ] = False,
) -> ProjectList:
    """The projects the caller may read (own, then shared), filtered by ``name`` and ``owner``."""
    with db.reading() as session:
        found = projects.list_projects(session, who, name, owner, deleted=trash)
        return ProjectList(projects=found, user=who.user_name)


@router.get("/{project_id}", response_model=ProjectInfo, responses=_ERRORS)
def project_info(project_id: ProjectId, who: Caller, db: DbDep) -> ProjectInfo:
    """Head version, file count and bytes of one project, and the caller's role."""
    with db.reading() as session:
        return projects.access_info(session, authorize(session, who.user_id, project_id, Role.READ))


@router.patch(
    "/{project_id}", response_model=ProjectInfo, responses={**_ADMIN, 409: {"model": ErrorBody}}
)
def rename_project(
    project_id: ProjectId, body: ProjectRename, who: Caller, db: DbDep
) -> ProjectInfo:
    """Rename the project (admins); its id stays, so every clone keeps working."""
    with db.writing() as session:
        return projects.access_info(
            session, projects.rename_project(session, who, project_id, body.name)
        )


@router.delete("/{project_id}", response_model=ProjectInfo, responses=_ADMIN)
def delete_project(project_id: ProjectId, who: Caller, db: DbDep) -> ProjectInfo:
    """Move the project into the trash (admins); ``restore`` brings it back until gc purges it."""
    with db.writing() as session:
        return projects.access_info(session, projects.delete_project(session, who, project_id))


@router.post(
    "/{project_id}/restore",
    response_model=ProjectInfo,
    responses={**_ADMIN, 409: {"model": ErrorBody}},
)
def restore_project(project_id: ProjectId, who: Caller, db: DbDep) -> ProjectInfo:
    """Take the project out of the trash (admins)."""
    with db.writing() as session:
        return projects.access_info(session, projects.restore_project(session, who, project_id))


@router.post(
    "/{project_id}/quota-check",
    response_model=QuotaInfo,
    responses={
        **_WRITE,
        413: {"model": ErrorBody, "description": "quota_exceeded: details.quota, details.used"},
    },
)
def quota_check(project_id: ProjectId, body: QuotaCheck, who: Caller, db: DbDep) -> QuotaInfo:
    """Whether a push adding ``added_bytes`` fits the owner's quota (asked before uploading)."""
    with db.reading() as session:
        return check_push(session, who, project_id, body.added_bytes)


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
