"""The FastAPI application: wiring of settings, database, blob store and routes."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

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
from robosync.server.store.base import BlobStore
from robosync.server.store.local import LocalStore
from robosync.server.store.s3 import S3Store
from robosync.server.thumbs import ThumbnailMaker
from robosync.server.web import docs, pages
from robosync.server.web import members as web_members

SECRET_FILE = "local-store.key"
BLOBS_DIR = "blobs"


def load_secret(data_dir: Path) -> bytes:
    """The local store's HMAC key, created (mode 0600) on first start."""
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


def build_store(settings: Settings) -> BlobStore:
    """The S3 store when S3 endpoint and bucket are set, else the local store in data_dir."""
    if settings.uses_s3:
        assert settings.s3_bucket is not None
        s3 = S3Store(
            settings.s3_endpoint,
            settings.s3_bucket,
            settings.s3_access_key,
            settings.s3_secret_key,
            settings.s3_region,
            addressing_style=settings.s3_addressing_style,
            expiry_seconds=settings.presign_expiry_seconds,
            public_endpoint=settings.s3_public_endpoint,
        )
        return s3
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return LocalStore(
        settings.data_dir / BLOBS_DIR,
        settings.effective_public_url,
        load_secret(settings.data_dir),
        expiry_seconds=settings.presign_expiry_seconds,
    )


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
