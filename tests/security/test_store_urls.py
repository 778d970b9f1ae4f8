"""The embedded store's signed URLs, attacked through a real API process.

tests/store covers the store behind a bare uvicorn; these go through
``robosync-server serve`` with the URLs the API itself handed out.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from robosync.digest import digest_bytes
from tests.fixtures.server import ServerProcess
from tests.security.conftest import robot_of
from tests.server.robot import Robot, put


@pytest.fixture(scope="module")
def robot(lone_embedded: ServerProcess) -> Iterator[Robot]:
    """A robot of the embedded server."""
    r = robot_of(lone_embedded, "store-urls")
    yield r
    r.close()


def _plan(robot: Robot, data: bytes) -> dict[str, Any]:
    (plan,) = robot.plan([digest_bytes(data)])
    assert plan["status"] == "upload"
    return plan


def _download_url(robot: Robot, data: bytes) -> str:
    blob = robot.upload(data)
    project = robot.new_project("urls")
    assert robot.commit(project, 0, [put("a.jpg", blob)]).status_code == 201
    r = robot.http.post(f"/v1/projects/{project}/downloads", json={"digests": [blob.digest]})
    return str(r.json()["items"][0]["url"])


def _flip_last(url: str) -> str:
    return url[:-1] + ("0" if url[-1] != "0" else "1")


def test_forged_signatures_are_refused(robot: Robot) -> None:
    data = os.urandom(200)
    part = _plan(robot, data)["parts"][0]
    r = httpx.put(_flip_last(part["url"]), content=data, headers=part["headers"])
    assert r.status_code == 403 and "signature" in r.text.lower()
    get_url = _download_url(robot, os.urandom(10))
    r = httpx.get(_flip_last(get_url))
    assert r.status_code == 403 and "signature" in r.text.lower()
    assert httpx.get(get_url.split("?")[0]).status_code == 403


def test_a_signature_for_one_key_does_not_open_another(robot: Robot) -> None:
    mine, other = os.urandom(100), os.urandom(100)
    d_mine, d_other = digest_bytes(mine).digest, digest_bytes(other).digest
    part = _plan(robot, mine)["parts"][0]
    moved = part["url"].replace(d_mine, d_other)
    headers = {"x-amz-checksum-sha256": digest_bytes(other).blocks[0].sha256_b64}
    assert httpx.put(moved, content=other, headers=headers).status_code == 403
    # A GET URL of one blob does not read another stored blob.
    stored = os.urandom(30)
    get_url = _download_url(robot, stored)
    secret = robot.upload(os.urandom(30))
    stolen = httpx.get(get_url.replace(digest_bytes(stored).digest, secret.digest))
    assert stolen.status_code == 403
    # A PUT URL cannot be used to GET, nor a GET URL to PUT.
    assert httpx.get(part["url"]).status_code == 403
    assert httpx.put(get_url, content=stored).status_code in (403, 405)


def _raw(server: ServerProcess, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``target`` byte for byte (httpx would normalise ``..`` and ``%2F``)."""
    u = urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "template",
    [
        "/v1/store/blobs%2F{d}",
        "/v1/store/blobs/..%2F..%2Flocal-store.key",
        "/v1/store/blobs/../../local-store.key",
        "/v1/store/%2e%2e/%2e%2e/local-store.key",
        "/v1/store/blobs/{d}/../../../robosync.sqlite",
    ],
)
def test_relative_or_encoded_store_paths_are_refused(
    robot: Robot, lone_embedded: ServerProcess, template: str
) -> None:
    url = _download_url(robot, os.urandom(20))
    digest = urlsplit(url).path.rsplit("/", 1)[1]
    query = urlsplit(url).query
    status, body = _raw(lone_embedded, "GET", template.format(d=digest) + "?" + query)
    assert status in (400, 403, 404), body
    assert b"error" in body
    assert (lone_embedded.data_dir / "local-store.key").read_bytes() not in body
