"""The console's pages: each reads the request, calls a service, renders a template.

Every project page goes through :func:`projects.get_project`, the same access
check the API's routes use, so another user's project is 404 here as there.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from robosync.errors import NotFound, RobosyncError, Unauthorized
from robosync.protocol import MAX_INT
from robosync.server.routes.deps import get_db, get_settings, get_store
from robosync.server.services import accounts, audit, browse, projects, web_sessions
from robosync.server.services.downloads import browser_type, presign_view, sizes_in_project
from robosync.server.thumbs import ThumbnailMaker, media_type
from robosync.server.web.render import page
from robosync.server.web.session import (
    SESSION_COOKIE,
    SIGNIN_CSRF_COOKIE,
    Actor,
    SignedIn,
    Viewer,
    check_signin_token,
    new_signin_token,
    session_lifetime,
    set_cookie,
)

HISTORY_PAGE = 50
DIGEST_PATTERN = "^[0-9a-f]{64}$"
# No text with NUL reaches a query: PostgreSQL cannot hold it in a string.
NO_NUL = "^[^\\x00]*$"
ProjectId = Annotated[int, Path(ge=1, le=MAX_INT)]
VersionArg = Annotated[int | None, Query(ge=0, le=MAX_INT)]


class ConsoleRoute(APIRoute):
    """A route answering errors with an HTML page (and sign-in with a redirect)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler so that errors become pages, not JSON."""
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                if request.method != "GET":
                    target = "/projects"
                return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)
            except RequestValidationError as e:
                first = e.errors()[0] if e.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return page(request, "error.html", status=400, message=f"bad request: {where}")
            except RobosyncError as e:
                return page(
                    request,
                    "error.html",
                    status=e.status,
                    message=e.message,
                    retry_after=e.details.get("retry_after"),
                )

        return console_handler


router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _safe_next(target: str) -> str:
    # Only a path of this site: never an absolute or scheme-relative URL.
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/projects"
    return target


# --- sign-in -------------------------------------------------------------------------------


@router.get("/")
def home() -> RedirectResponse:
    """The console starts at the projects page."""
    return RedirectResponse("/projects", status_code=303)


@router.get("/signin")
def signin_form(request: Request, next: str = "/projects") -> Response:
    """The sign-in form."""
    return _signin_page(request, _safe_next(next))


def _signin_page(request: Request, next_url: str, error: str = "", status: int = 200) -> Response:
    token = new_signin_token()
    response = page(
        request, "signin.html", status=status, next_url=next_url, error=error, signin_csrf=token
    )
    set_cookie(request, response, SIGNIN_CSRF_COOKIE, token, 3600)
    return response


@router.post("/signin")
def signin(
    request: Request,
    user: Annotated[str, Form(max_length=200, pattern=NO_NUL)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/projects",
) -> Response:
    """Check the password and open a session; a wrong one shows the form again (401)."""
    check_signin_token(request, csrf)
    settings = get_settings(request)
    limiter = request.app.state.rate_limiter
    address = request.client.host if request.client else "unknown"
    # Every attempt counts against the address; only failures against the user
    # name, so that nobody can lock a person out who keeps signing in correctly.
    limiter.check_signin(settings.signin_rate_per_address, "address", address)
    limiter.check_signin(settings.signin_rate_per_user, "user", user, count=False)
    lifetime = session_lifetime(request)
    try:
        with get_db(request).writing() as session:
            account = web_sessions.check_password(session, user, password)
            cookie = web_sessions.open_session(session, account, lifetime)
    except Unauthorized as e:
        limiter.count_signin(settings.signin_rate_per_user, "user", user)
        return _signin_page(request, _safe_next(next), e.message, status=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(request, response, SESSION_COOKIE, cookie, int(lifetime.total_seconds()))
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/")
    return response


@router.post("/signout")
def signout(request: Request, who: Actor) -> Response:
    """End the session and forget the cookie."""
    with get_db(request).writing() as session:
        web_sessions.close_session(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- projects --------------------------------------------------------------------------------


@router.get("/projects")
def project_list(request: Request, who: Viewer) -> Response:
    """Every project of the person: size, head version and last push."""
    with get_db(request).reading() as session:
        rows = projects.list_projects(session, who.principal)
        heads = browse.head_versions(session, rows)
    return page(request, "projects.html", who, projects=rows, heads=heads)


@router.get("/p/{project_id}")
def project_page(
    request: Request,
    who: Viewer,
    project_id: ProjectId,
    v: VersionArg = None,
    prefix: Annotated[str, Query(max_length=4096, pattern=NO_NUL)] = "",
    after: Annotated[str | None, Query(max_length=4096, pattern=NO_NUL)] = None,
    q: Annotated[str, Query(max_length=200, pattern=NO_NUL)] = "",
) -> Response:
    """A project at a version: folders and a page of thumbnails, filtered by name."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    with get_db(request).reading() as session:
        project, version = projects.project_at(session, who.principal, project_id, v)
        listing = browse.folder_page(session, project_id, version, prefix, after, q.strip())
        versions = projects.list_versions(session, project, limit=HISTORY_PAGE)
    return page(
        request,
        "project.html",
        who,
        project=project,
        version=version,
        versions=versions,
        prefix=prefix,
        listing=listing,
        q=q,
        after=after,
    )


@router.get("/p/{project_id}/file")
def file_page(
    request: Request,
    who: Viewer,
    project_id: ProjectId,
    path: Annotated[str, Query(min_length=1, max_length=4096, pattern=NO_NUL)],
    v: VersionArg = None,
) -> Response:
    """One file: shown inline, its digest and size, and the versions that changed it."""
    with get_db(request).reading() as session:
        project, version = projects.project_at(session, who.principal, project_id, v)
        entry = browse.file_at(session, project_id, version, path)
        changes = browse.path_history(session, project_id, path)
    return page(
        request,
        "file.html",
        who,
        project=project,
        version=version,
        entry=entry,
        changes=changes,
        inline=browser_type(entry.path) is not None,
    )


@router.get("/p/{project_id}/raw")
def raw_file(
    request: Request,
    who: Viewer,
    project_id: ProjectId,
    path: Annotated[str, Query(min_length=1, max_length=4096, pattern=NO_NUL)],
    v: VersionArg = None,
    download: bool = False,
) -> Response:
    """Redirect to a presigned GET of the file: inline for images, else (or asked) a download."""
    with get_db(request).reading() as session:
        project, version = projects.project_at(session, who.principal, project_id, v)
        entry = browse.file_at(session, project_id, version, path)
    url = presign_view(get_store(request), entry.digest, entry.path, attachment=download)
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


@router.get("/p/{project_id}/thumb/{digest}")
async def thumbnail(
    request: Request,
    who: Viewer,
    project_id: ProjectId,
    digest: Annotated[str, Path(pattern=DIGEST_PATTERN)],
    name: Annotated[str, Query(max_length=4096, pattern=NO_NUL)] = "",
) -> Response:
    """The thumbnail of a file of the project (made on first view), cached for good."""
    await run_in_threadpool(_check_digest_in_project, request, who, project_id, digest)
    etag = f'"{digest[:32]}-256"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=31536000, immutable"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    maker: ThumbnailMaker = request.app.state.thumbnails
    data = await maker.thumbnail(digest, name)
    return Response(data, media_type=media_type(data), headers=headers)


def _check_digest_in_project(request: Request, who: Viewer, project_id: int, digest: str) -> None:
    with get_db(request).reading() as session:
        projects.get_project(session, who.principal, project_id)
        if not sizes_in_project(session, project_id, [digest]):
            raise NotFound("no such file in this project", {"digest": digest})


@router.get("/p/{project_id}/history")
def history_page(
    request: Request,
    who: Viewer,
    project_id: ProjectId,
    before: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> Response:
    """Versions newest first, with added / modified / deleted counts."""
    with get_db(request).reading() as session:
        project = projects.get_project(session, who.principal, project_id)
        versions = projects.list_versions(session, project, before=before, limit=HISTORY_PAGE)
        modified = browse.modified_counts(session, project_id, [v.number for v in versions])
    older = versions[-1].number if len(versions) == HISTORY_PAGE else None
    return page(
        request,
        "history.html",
        who,
        project=project,
        versions=versions,
        modified=modified,
        older=older,
    )


@router.get("/p/{project_id}/v/{number}")
def version_page(
    request: Request,
    who: Viewer,
    project_id: ProjectId,
    number: Annotated[int, Path(ge=1, le=MAX_INT)],
) -> Response:
    """What one version changed against its parent, with thumbnails."""
    with get_db(request).reading() as session:
        project = projects.get_project(session, who.principal, project_id)
        projects.check_version_kept(session, project_id, number, project.head_version)
        (info,) = projects.list_versions(session, project, before=number + 1, limit=1)
        diff = browse.version_diff(session, project_id, number)
    return page(request, "version.html", who, project=project, info=info, diff=diff)


# --- robots --------------------------------------------------------------------------------


@router.get("/robots")
def robots_page(request: Request, who: Viewer) -> Response:
    """Every token of the person's robots."""
    return _robots(request, who)


def _robots(
    request: Request, who: Viewer, new_token: str = "", robot: str = "", error: str = ""
) -> Response:
    with get_db(request).reading() as session:
        tokens = accounts.list_tokens(session, who.principal.user_id)
    server = get_settings(request).effective_public_url
    status = 400 if error else 200
    return page(
        request,
        "robots.html",
        who,
        status=status,
        tokens=tokens,
        new_token=new_token,
        robot=robot,
        server=server,
        error=error,
    )


@router.post("/robots")
def create_robot_token(
    request: Request,
    who: Actor,
    robot: Annotated[str, Form(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")],
) -> Response:
    """Create a token for a new robot; it is shown on this answer only."""
    try:
        with get_db(request).writing() as session:
            user = accounts.find_user(session, who.principal.user_name)
            token = accounts.create_token(session, user, robot, _audit_actor(request, who))
    except RobosyncError as e:
        if e.status >= 500:
            raise
        return _robots(request, who, error=e.message)
    return _robots(request, who, new_token=token, robot=robot)


@router.post("/robots/revoke")
def revoke_robot_token(
    request: Request,
    who: Actor,
    robot: Annotated[str, Form(min_length=1, max_length=200, pattern=NO_NUL)],
) -> Response:
    """Revoke a robot's token: its next request is refused (401)."""
    with get_db(request).writing() as session:
        user = accounts.find_user(session, who.principal.user_name)
        accounts.revoke_token(session, user, robot, _audit_actor(request, who))
    return RedirectResponse("/robots", status_code=303)


def _audit_actor(request: Request, who: SignedIn) -> audit.Actor:
    """The person signed in to the console, as the audit trail names them."""
    address = request.client.host if request.client else "unknown"
    return audit.Actor(who.principal.user_name, who.principal.robot, address)
