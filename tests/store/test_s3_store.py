"""What only the S3 store has to prove: bucket setup, reachability, public endpoint."""

from __future__ import annotations

import os
import socket
import time
import uuid

import httpx
import pytest

from robosync.digest import digest_bytes
from robosync.errors import Unavailable
from robosync.server.store.s3 import S3Store
from tests.fixtures.seaweedfs import SeaweedFS
from tests.store.conftest import s3_store


def test_check_fails_until_ensure_bucket_creates_it(seaweedfs: SeaweedFS) -> None:
    store = s3_store(seaweedfs, "fresh-" + uuid.uuid4().hex[:16])
    with pytest.raises(Unavailable):
        store.check()
    store.ensure_bucket()
    store.ensure_bucket()  # a second call finds it and does nothing
    store.check()


def test_urls_are_signed_for_the_public_endpoint(seaweedfs: SeaweedFS, http: httpx.Client) -> None:
    bucket = seaweedfs.new_bucket()
    public = seaweedfs.endpoint.replace("127.0.0.1", "localhost")
    robot_view = S3Store(
        endpoint=seaweedfs.endpoint,
        bucket=bucket,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        region=seaweedfs.region,
        public_endpoint=public,
    )
    data = os.urandom(1000)
    d = digest_bytes(data)
    req = robot_view.presign_put(f"blobs/{d.digest}", d.blocks[0].sha256_b64, d.size)
    assert req.url.startswith(public + "/")
    # SigV4 signs the host: the URL works at the public name, not at the API's.
    moved = req.url.replace(public, seaweedfs.endpoint)
    assert http.put(moved, content=data, headers=req.headers).status_code == 403
    assert http.put(req.url, content=data, headers=req.headers).status_code == 200
    info = robot_view.head(f"blobs/{d.digest}")
    assert info is not None and info.checksum_sha256 == d.blocks[0].sha256_b64


def test_check_reports_an_unreachable_store_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    store = S3Store(f"http://127.0.0.1:{port}", "bucket", "key", "secret", "us-east-1")
    started = time.monotonic()
    with pytest.raises(Unavailable):
        store.check()
    assert time.monotonic() - started < 5
