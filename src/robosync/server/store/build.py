"""Choosing and building the blob store from the settings.

Apart from the app so that ``robosync-server gc`` builds the store without
importing the web application (FastAPI and every route); boto3 is imported
only when the settings select S3.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from robosync.server.settings import Settings
from robosync.server.store.base import BlobStore
from robosync.server.store.local import LocalStore

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
        from robosync.server.store.s3 import S3Store

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
