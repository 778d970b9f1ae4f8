"""Dependencies shared by the routes: the app's database, store and settings, and auth."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from robosync.errors import Unauthorized
from robosync.server.db.engine import Database
from robosync.server.services.accounts import Principal, authenticate
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
        principal = authenticate(session, credentials.credentials)
    request.app.state.rate_limiter.check_request(principal.user_id)
    return principal


DbDep = Annotated[Database, Depends(get_db)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Caller = Annotated[Principal, Depends(current_principal)]
