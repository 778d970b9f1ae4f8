"""The FastAPI application: wiring of settings, database, blob store and routes."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import robosync
from robosync.server import fleet_metrics, metrics
from robosync.server.db.engine import Database
from robosync.server.errors import install_error_handlers
from robosync.server.limits import RateLimiter
from robosync.server.logs import RequestLogMiddleware
from robosync.server.routes import commits, downloads, health, members, projects, uploads
from robosync.server.routes.local_store import local_store_router
from robosync.server.settings import Settings
from robosync.server.store.build import BLOBS_DIR, SECRET_FILE, build_store, load_secret
from robosync.server.store.local import LocalStore
from robosync.server.thumbs import ThumbnailMaker
from robosync.server.web import docs, pages
from robosync.server.web import members as web_members

__all__ = ["BLOBS_DIR", "SECRET_FILE", "build_store", "create_app", "load_secret"]


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """A ready application for ``settings`` (the schema must already be migrated)."""
    app = FastAPI(
        # /docs is served by web/docs.py from assets inside the package, not a CDN.
        docs_url=None,
        redoc_url=None,
        title="robosync",
        version=robosync.__version__,
        description="Versioned, deduplicated, verified transfer of robot images. "
        "Authenticate with `Authorization: Bearer <token>`.",
    )
    app.state.settings = settings
    app.state.db = db or Database(settings.effective_database_url)
    store = build_store(settings)
    app.state.store = store
    app.state.rate_limiter = RateLimiter(
        settings.rate_limit, settings.redis_url, key_prefix=settings.redis_key_prefix
    )
    install_error_handlers(app)
    metrics.count_rate_limited(app)
    fleet_metrics.watch(app.state.db)
    app.add_middleware(RequestLogMiddleware)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(projects.router)
    app.include_router(members.router)
    app.include_router(commits.router)
    app.include_router(downloads.router)
    app.include_router(uploads.router)
    if isinstance(store, LocalStore):
        app.include_router(local_store_router(store))
    app.state.thumbnails = ThumbnailMaker(
        store, settings.thumbnail_workers, settings.thumbnail_library
    )
    app.include_router(docs.router)
    app.include_router(pages.router)
    app.include_router(web_members.router)
    app.mount("/static", StaticFiles(packages=[("robosync.server.web", "static")]), name="static")
    return app
