"""Liveness and readiness probes (no auth)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from robosync.errors import Unavailable
from robosync.server.routes.deps import DbDep, StoreDep

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(db: DbDep, store: StoreDep) -> JSONResponse:
    """The database and the blob store answer; 503 naming the one that does not."""
    try:
        with db.reading() as session:
            session.execute(text("SELECT 1"))
    except Exception as e:
        log.warning("readiness: database unavailable: %s", e)
        raise Unavailable("database unavailable", {"dependency": "database"}) from e
    try:
        store.check()
    except Exception as e:
        log.warning("readiness: blob store unavailable: %s", e)
        raise Unavailable("blob store unavailable", {"dependency": "store"}) from e
    return JSONResponse({"status": "ready"})
