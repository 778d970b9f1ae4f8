"""A link that drops in the middle of a transfer: a PUT is retried, never taken as whole;
a download is fetched again, never written torn."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, text

from robosync.client.api import Api
from robosync.client.wire import CompleteItem, PutOp, UploadItem
from robosync.digest import digest_bytes
from robosync.errors import MissingBlobs
from tests.client.conftest import folder_digests, project_name, sha
from tests.faults.conftest import Lab, Site, write_images
from tests.faults.cutproxy import CuttingProxy
from tests.fixtures.server import ServerProcess

CUT_AFTER = 100_000


@pytest.fixture
def cut_server(fresh_env: dict[str, str], lab: Lab) -> Iterator[tuple[ServerProcess, CuttingProxy]]:
    """A server whose robots reach the blob store through a proxy that cuts the first PUTs."""
    server = lab.server(fresh_env, start=False)
    s3 = server.env.get("ROBOSYNC_S3_ENDPOINT")
    target = urlsplit(s3) if s3 else None
    proxy = CuttingProxy(
        target.hostname or "127.0.0.1" if target else "127.0.0.1",
        (target.port or 80) if target else server.port,
        after=CUT_AFTER,
        cuts=0,
    ).start()
    server.env["ROBOSYNC_S3_PUBLIC_ENDPOINT" if s3 else "ROBOSYNC_PUBLIC_URL"] = proxy.url
    server.start()
    yield server, proxy
    proxy.stop()


def blob_state(site: Site, digest: str) -> str | None:
    """The blob's state in the server's database (``None``: no row)."""
    engine = create_engine(site.database_url())
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT state FROM blobs WHERE digest = :d"), {"d": digest}
            ).scalar_one_or_none()
    finally:
        engine.dispose()


def test_a_put_cut_half_way_is_never_taken_as_the_blob(
    cut_server: tuple[ServerProcess, CuttingProxy], site_on: Callable[[ServerProcess], Site]
) -> None:
    server, proxy = cut_server
    site = site_on(server)
    data = os.urandom(3 * CUT_AFTER)
    blob = digest_bytes(data)
    item = UploadItem(
        digest=blob.digest, size=blob.size, blocks=[b.sha256_hex for b in blob.blocks]
    )
    api = Api(server.url, site.token)
    try:
        name = project_name()
        project = api.create_project(name)
        part = api.plan_uploads([item]).items[0].parts[0]
        proxy.cuts_left = 1
        with pytest.raises(httpx.TransportError):
            httpx.put(part.url, content=data, headers=part.headers, timeout=30)
        assert proxy.cut == 1

        done = api.complete_uploads([CompleteItem(digest=blob.digest)]).items[0]
        assert done.status == "failed"
        assert blob_state(site, blob.digest) != "present"
        with pytest.raises(MissingBlobs):
            api.commit(
                project.id,
                0,
                lambda: [PutOp(path="a.png", digest=blob.digest, size=blob.size)],
                message="",
                idempotency_key=uuid.uuid4().hex,
            )

        # The same robot tries again over a working link: now it is whole.
        part = api.plan_uploads([item]).items[0].parts[0]
        assert httpx.put(part.url, content=data, headers=part.headers, timeout=30).is_success
        assert api.complete_uploads([CompleteItem(digest=blob.digest)]).items[0].status == (
            "present"
        )
        api.commit(
            project.id,
            0,
            lambda: [PutOp(path="a.png", digest=blob.digest, size=blob.size)],
            message="",
            idempotency_key=uuid.uuid4().hex,
        )
    finally:
        api.close()
    site.assert_clone_matches(name, {"a.png": sha(data)})


@pytest.mark.parametrize("fresh_env", ["embedded"], indirect=True)
def test_push_retries_puts_cut_half_way(
    cut_server: tuple[ServerProcess, CuttingProxy], site_on: Callable[[ServerProcess], Site]
) -> None:
    server, proxy = cut_server
    site = site_on(server)
    robot = site.robot("r1")
    write_images(robot.root, 12, 300 * 1024)
    write_images(robot.root, 1, 9 * 1024 * 1024, prefix="big")
    name = project_name()
    robot.cli("init", name)
    proxy.cuts_left = 4
    out = robot.cli("push", "--jobs", "4")
    assert out.stdout.startswith("pushed v1: +13"), out.stdout
    assert proxy.cut == 4
    site.assert_clone_matches(name, folder_digests(robot.root))


@pytest.mark.parametrize("fresh_env", ["embedded"], indirect=True)
def test_clone_fetches_again_what_a_dropped_link_cut_half_way(
    cut_server: tuple[ServerProcess, CuttingProxy], site_on: Callable[[ServerProcess], Site]
) -> None:
    server, proxy = cut_server
    site = site_on(server)
    robot = site.robot("r1")
    write_images(robot.root, 40, 30 * 1024)  # small: fetched from one thread, many at once
    name = project_name()
    robot.cli("init", name)
    robot.cli("push")
    proxy.answer_cuts_left = 3
    clone = site.robot("r2")
    clone.home.mkdir(parents=True)
    out = clone.cli("clone", name, str(clone.root), "--jobs", "4")
    assert proxy.cut == 3, out.stdout
    assert folder_digests(clone.root) == folder_digests(robot.root)
