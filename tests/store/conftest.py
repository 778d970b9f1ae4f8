"""Both blob stores behind real HTTP: S3Store on SeaweedFS, LocalStore on uvicorn."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from robosync.server.routes.local_store import local_store_router
from robosync.server.store.base import BlobStore
from robosync.server.store.local import LocalStore
from robosync.server.store.s3 import S3Store
from tests.fixtures.seaweedfs import SeaweedFS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UvicornThread:
    """A real uvicorn HTTP server for ``app`` on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> UvicornThread:
        """Start serving and wait until the socket accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)


@dataclass
class LocalStoreServer:
    """An embedded store folder, its signing secret and the server of its URLs."""

    root: Path
    url: str
    secret: bytes

    def store(self, expiry_seconds: int = 900) -> LocalStore:
        """A LocalStore on this folder whose URLs this server answers."""
        return LocalStore(self.root, self.url, self.secret, expiry_seconds)


@pytest.fixture(scope="session")
def local_store_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStoreServer]:
    """A LocalStore under ``<tmp>/root`` served by a real uvicorn (siblings stay empty)."""
    base = tmp_path_factory.mktemp("local-store")
    root = base / "root"
    secret = secrets.token_bytes(32)
    # The store's URLs name the server's port, so the port is chosen first.
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = FastAPI()
    app.include_router(local_store_router(LocalStore(root, url, secret)))
    server = UvicornThread(app, port).start()
    try:
        yield LocalStoreServer(root, url, secret)
    finally:
        server.stop()


@dataclass
class StoreCase:
    """One store under test plus how to build a twin with another expiry."""

    name: str
    store: BlobStore
    local: LocalStoreServer | None = None
    seaweedfs: SeaweedFS | None = None
    bucket: str = ""

    def with_expiry(self, seconds: int) -> BlobStore:
        """The same store, presigning URLs that expire after ``seconds``."""
        if self.local is not None:
            return self.local.store(seconds)
        assert self.seaweedfs is not None
        return s3_store(self.seaweedfs, self.bucket, seconds)


def s3_store(sw: SeaweedFS, bucket: str, expiry_seconds: int = 900) -> S3Store:
    """An S3Store on ``bucket`` of the test SeaweedFS."""
    return S3Store(
        endpoint=sw.endpoint,
        bucket=bucket,
        access_key=sw.access_key,
        secret_key=sw.secret_key,
        region=sw.region,
        expiry_seconds=expiry_seconds,
    )


@pytest.fixture(params=["local", "s3"])
def store_case(request: pytest.FixtureRequest) -> StoreCase:
    """Each test runs once against the embedded store and once against SeaweedFS."""
    if request.param == "local":
        local: LocalStoreServer = request.getfixturevalue("local_store_server")
        return StoreCase("local", local.store(), local=local)
    sw: SeaweedFS = request.getfixturevalue("seaweedfs")
    bucket = sw.new_bucket()
    return StoreCase("s3", s3_store(sw, bucket), seaweedfs=sw, bucket=bucket)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """The robot side: a plain HTTP client for presigned URLs."""
    with httpx.Client(timeout=60) as client:
        yield client
