"""The console's members page of a project: who has which role; admins share and unshare.

Thin like the other pages: every decision is ``services/members.py``'s, and
so ``access.authorize``'s, the same as the API's ``/members`` routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from robosync.errors import RobosyncError
from robosync.server.access import Role, authorize
from robosync.server.routes.deps import get_db
from robosync.server.services import members
from robosync.server.services.accounts import Principal
from robosync.server.web.pages import ConsoleRoute, ProjectId
from robosync.server.web.render import page
from robosync.server.web.session import Actor, SignedIn, Viewer

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
UserName = Annotated[str, Form(min_length=1, max_length=200)]


def _acting(request: Request, who: SignedIn) -> SignedIn:
    """The person, with the address the audit trail records."""
    address = request.client.host if request.client else "unknown"
    return replace(who, principal=replace(who.principal, address=address))


@router.get("/p/{project_id}/members")
def members_page(request: Request, who: Viewer, project_id: ProjectId) -> Response:
    """The owner and members with their roles; forms to change them for admins."""
    return _render(request, who, project_id)


def _render(request: Request, who: SignedIn, project_id: int, error: str = "") -> Response:
    with get_db(request).reading() as session:
        access = authorize(session, who.principal.user_id, project_id, Role.READ)
        rows = members.list_members(session, who.principal, project_id)
    return page(
        request,
        "members.html",
        who,
        status=400 if error else 200,
        project=access.project,
        role=access.role,
        members=rows,
        roles=[r.value for r in Role],
        error=error,
    )


@router.post("/p/{project_id}/members")
def share(
    request: Request,
    who: Actor,
    project_id: ProjectId,
    user: UserName,
    role: Annotated[Literal["read", "write", "admin"], Form()],
) -> Response:
    """Give a user a role in the project (admins)."""

    def action(session: Session, acting: Principal) -> None:
        members.share(session, acting, project_id, user, Role(role))

    return _change(request, who, project_id, action)


@router.post("/p/{project_id}/members/remove")
def unshare(request: Request, who: Actor, project_id: ProjectId, user: UserName) -> Response:
    """Remove a user from the project (admins, or a member leaving: back to the projects)."""

    def action(session: Session, acting: Principal) -> None:
        members.unshare(session, acting, project_id, user)

    answer = _change(request, who, project_id, action)
    if user == who.principal.user_name and answer.status_code == 303:
        return RedirectResponse("/projects", status_code=303)
    return answer


def _change(
    request: Request,
    who: SignedIn,
    project_id: int,
    action: Callable[[Session, Principal], None],
) -> Response:
    acting = _acting(request, who)
    try:
        with get_db(request).writing() as session:
            action(session, acting.principal)
    except RobosyncError as e:
        # An unknown user or the owner is explained on the page; other refusals
        # (403, 404) are the console's error page, as on every other page.
        if e.status >= 500 or "user" not in e.details:
            raise
        return _render(request, who, project_id, error=e.message)
    return RedirectResponse(f"/p/{project_id}/members", status_code=303)
