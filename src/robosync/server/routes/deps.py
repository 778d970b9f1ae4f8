"""Dependencies shared by the routes: the app's database, store and settings, and auth."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from robosync.errors import Unauthorized
from robosync.protocol import MAX_INT, ErrorBody
from robosync.server.db.engine import Database
from robosync.server.db.models import utcnow
from robosync.server.logs import set_user_id
from robosync.server.services.accounts import (
    Principal,
    authenticate_token,
    note_token_used,
    token_use_is_stale,
)
from robosync.server.settings import Settings
from robosync.server.store.base import BlobStore

_bearer = HTTPBearer(auto_error=False, description="a robot token from `create-token`")


def get_db(request: Request) -> Database:
    """The app's database."""
    db: Database = request.app.state.db
    return db


def get_store(request: Request) -> BlobStore:
    """The app's blob store."""
    store: BlobStore = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def current_principal(
    request: Request,
    db: Annotated[Database, Depends(get_db)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send Authorization: Bearer <token>")
    with db.reading() as session:
        principal, last_used = authenticate_token(session, credentials.credentials)
    now = utcnow()
    if principal.token_id is not None and token_use_is_stale(last_used, now):
        with db.writing() as session:
            note_token_used(session, principal.token_id, now)
    address = request.client.host if request.client else ""
    principal = replace(principal, address=address)
    set_user_id(principal.user_id)
    request.app.state.rate_limiter.check_request(principal.user_id)
    return principal


DbDep = Annotated[Database, Depends(get_db)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Caller = Annotated[Principal, Depends(current_principal)]
ProjectId = Annotated[int, Path(ge=1, le=MAX_INT, description="a project id of the caller")]

# Answers any route with a token can give, documented once for every router.
AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "malformed request (details name the problem)"},
    401: {"model": ErrorBody, "description": "no token, or an unknown or revoked one"},
    429: {"model": ErrorBody, "description": "over a per-user limit; see Retry-After"},
    503: {"model": ErrorBody, "description": "database or object store unavailable"},
    # Every other client error has the same shape (this also replaces FastAPI's
    # 422 validation schema: validation errors are answered 400 here).
    "4XX": {"model": ErrorBody, "description": "other client errors"},
}
