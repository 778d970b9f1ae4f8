"""What only the embedded store has to prove itself: its signatures and its folder."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from robosync.digest import BLOCK_SIZE, digest_bytes
from robosync.errors import InvalidInput
from robosync.server.routes.local_store import RedactSignatures
from robosync.server.store.local import LocalStore
from tests.store.conftest import LocalStoreServer


def raw_status(
    base_url: str, method: str, target: str, headers: dict[str, str], body: bytes
) -> int:
    """Send a request line exactly as given (no client-side path normalisation)."""
    u = urlsplit(base_url)
    assert u.hostname and u.port
    lines = [f"{method} {target} HTTP/1.1", f"Host: {u.netloc}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Connection: close", "", ""]
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall("\r\n".join(lines).encode() + body)
        status_line = s.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def all_files(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture
def local(local_store_server: LocalStoreServer) -> LocalStore:
    return local_store_server.store()


def test_forged_or_misapplied_signatures_are_refused(local: LocalStore, http: httpx.Client) -> None:
    data, other = os.urandom(2000), os.urandom(2000)
    d, o = digest_bytes(data), digest_bytes(other)
    req = local.presign_put(f"blobs/{d.digest}", d.blocks[0].sha256_b64, d.size)
    u = urlsplit(req.url)
    sig = u.query.rsplit("=", 1)[1]
    forged = req.url[: -len(sig)] + ("1" if sig[0] == "0" else "0") + sig[1:]
    assert http.put(forged, content=data, headers=req.headers).status_code == 403

    # A valid signature for blob D does not let anyone write blob O.
    o_url = req.url.replace(d.digest, o.digest)
    o_headers = {"x-amz-checksum-sha256": o.blocks[0].sha256_b64}
    assert http.put(o_url, content=other, headers=o_headers).status_code == 403

    # Stretching the expiry breaks the signature.
    later = req.url.replace("X-Robosync-Expires=", "X-Robosync-Expires=9")
    assert http.put(later, content=data, headers=req.headers).status_code == 403

    unsigned = req.url.split("?", 1)[0]
    assert http.put(unsigned, content=data, headers=req.headers).status_code == 403
    assert local.head(f"blobs/{d.digest}") is None
    assert local.head(f"blobs/{o.digest}") is None


def test_part_signature_is_bound_to_its_upload_and_number(
    local: LocalStore, http: httpx.Client
) -> None:
    data = os.urandom(3000)
    d = digest_bytes(data)
    key = f"blobs/{d.digest}"
    first, second = local.create_multipart(key), local.create_multipart(key)
    b = d.blocks[0]
    req = local.presign_part(key, first, 1, b.sha256_b64, b.size)
    as_part_2 = req.url.replace(f"/{first}/1?", f"/{first}/2?")
    assert http.put(as_part_2, content=data, headers=req.headers).status_code == 403
    other_upload = req.url.replace(first, second)
    assert http.put(other_upload, content=data, headers=req.headers).status_code == 403
    assert local.list_parts(key, first) == []
    assert local.list_parts(key, second) == []
    assert http.put(req.url, content=data, headers=req.headers).status_code == 200
    local.abort_multipart(key, first)
    local.abort_multipart(key, second)


@pytest.mark.parametrize(
    "target",
    [
        "/v1/store/blobs/../../escape-{d}",
        "/v1/store/blobs%2F{d}",
        "/v1/store/blobs/..%2F..%2Fescape-{d}",
        "/v1/store/%2E%2E/%2E%2E/escape-{d}",
        "/v1/store//tmp/escape-{d}",
        "/v1/store/blobs/{d}/../../../escape-{d}",
        "/v1/store-uploads/../../escape/1",
        "/v1/store-uploads/..%2F..%2Fescape/1",
    ],
)
def test_keys_escaping_the_store_are_refused_and_nothing_is_written(
    local_store_server: LocalStoreServer, local: LocalStore, target: str
) -> None:
    data = os.urandom(500)
    d = digest_bytes(data)
    req = local.presign_put(f"blobs/{d.digest}", d.blocks[0].sha256_b64, d.size)
    query = urlsplit(req.url).query
    base = local_store_server.root.parent
    before = all_files(base)
    status = raw_status(
        local_store_server.url, "PUT", target.format(d=d.digest) + "?" + query, req.headers, data
    )
    assert status in (400, 403, 404)
    assert all_files(base) == before
    assert not any("escape" in p for p in all_files(base.parent))


def test_presign_and_head_refuse_malformed_keys(local: LocalStore) -> None:
    for key in ("blobs/../x", "blobs/" + "A" * 64, "/etc/passwd", "blobs/" + "0" * 63, "x"):
        with pytest.raises(InvalidInput):
            local.presign_put(key, "", 1)
        with pytest.raises(InvalidInput):
            local.head(key)
        with pytest.raises(InvalidInput):
            local.presign_get(key)


def test_refused_bodies_leave_no_temporary_files(
    local_store_server: LocalStoreServer, local: LocalStore, http: httpx.Client
) -> None:
    data = os.urandom(BLOCK_SIZE // 4)
    d = digest_bytes(data)
    req = local.presign_put(f"blobs/{d.digest}", d.blocks[0].sha256_b64, d.size)
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    r = http.put(req.url, content=tampered, headers=req.headers)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "integrity"
    leftovers = [p for p in all_files(local_store_server.root) if ".tmp-" in p]
    assert leftovers == []


def test_unfinished_upload_survives_a_restart_of_the_api(
    local_store_server: LocalStoreServer, http: httpx.Client
) -> None:
    data = os.urandom(BLOCK_SIZE + 10)
    d = digest_bytes(data)
    key = f"blobs/{d.digest}"
    before = local_store_server.store()
    upload_id = before.create_multipart(key)
    b = d.blocks[0]
    r = http.put(
        before.presign_part(key, upload_id, 1, b.sha256_b64, b.size).url,
        content=data[:BLOCK_SIZE],
        headers={"x-amz-checksum-sha256": b.sha256_b64},
    )
    assert r.status_code == 200

    after = local_store_server.store()  # a new process: same folder and secret
    listed = after.list_parts(key, upload_id)
    assert listed is not None and [p.number for p in listed] == [1]
    last = d.blocks[1]
    req = after.presign_part(key, upload_id, 2, last.sha256_b64, last.size)
    r2 = http.put(req.url, content=data[BLOCK_SIZE:], headers=req.headers)
    assert r2.status_code == 200
    after.complete_multipart(
        key,
        upload_id,
        [(1, listed[0].etag, b.sha256_b64), (2, r2.headers["ETag"], last.sha256_b64)],
    )
    assert http.get(after.presign_get(key)).content == data


def test_access_log_lines_lose_their_signatures() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5",
            "PUT",
            "/v1/store/blobs/ab?X-Robosync-Expires=1&X-Robosync-Signature=f00d",
            "1.1",
            200,
        ),
        None,
    )
    assert RedactSignatures().filter(record)
    assert "f00d" not in record.getMessage()
    assert "/v1/store/blobs/ab" in record.getMessage()
