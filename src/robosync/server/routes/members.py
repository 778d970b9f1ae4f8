"""Members of a project: list (any member), share and unshare (admins; a member may leave)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from robosync.protocol import ErrorBody, MemberInfo, MemberList, ShareRequest
from robosync.server.access import Role
from robosync.server.routes.deps import AUTH_ERRORS, Caller, DbDep, ProjectId
from robosync.server.services import members

router = APIRouter(prefix="/v1/projects", tags=["members"], responses=AUTH_ERRORS)

UserName = Annotated[str, Path(min_length=1, max_length=200, description="a user's name")]
_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorBody, "description": "the caller is a member but not an admin"},
    404: {"model": ErrorBody, "description": "no such project for the caller, or no such user"},
}


def _info(row: members.MemberRow) -> MemberInfo:
    return MemberInfo(user=row.user, role=row.role.value, owner=row.owner, since=row.since)


@router.get("/{project_id}/members", response_model=MemberList, responses=_ERRORS)
def list_members(project_id: ProjectId, who: Caller, db: DbDep) -> MemberList:
    """The owner (an admin) and every member with their role."""
    with db.reading() as session:
        rows = members.list_members(session, who, project_id)
    return MemberList(members=[_info(r) for r in rows])


@router.put("/{project_id}/members/{user}", response_model=MemberInfo, responses=_ERRORS)
def share(
    project_id: ProjectId, user: UserName, body: ShareRequest, who: Caller, db: DbDep
) -> MemberInfo:
    """Give ``user`` a role in the project (or change it)."""
    with db.writing() as session:
        members.share(session, who, project_id, user, Role(body.role))
        rows = members.list_members(session, who, project_id)
    return next(_info(r) for r in rows if r.user == user)


@router.delete("/{project_id}/members/{user}", status_code=204, responses=_ERRORS)
def unshare(project_id: ProjectId, user: UserName, who: Caller, db: DbDep) -> Response:
    """Remove ``user`` from the project; a member may remove themselves."""
    with db.writing() as session:
        members.unshare(session, who, project_id, user)
    return Response(status_code=204)
