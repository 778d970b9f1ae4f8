"""Both blob stores keep the promises robosync builds on, over real HTTP.

Each test runs against the embedded LocalStore (served by uvicorn) and
against S3Store on SeaweedFS: presigned PUTs bound to a block's SHA-256 and
size, multipart resume, and a HEAD whose checksum proves the digest.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from robosync.digest import (
    BLOCK_SIZE,
    BlobDigest,
    composite_checksum,
    digest_bytes,
    digest_from_s3_checksum,
)
from robosync.errors import RobosyncError
from robosync.server.store.base import BlobStore, PresignedRequest
from tests.store.conftest import StoreCase

CHECKSUM = "x-amz-checksum-sha256"


def key_of(d: BlobDigest) -> str:
    return f"blobs/{d.digest}"


def put(http: httpx.Client, req: PresignedRequest, body: bytes, **headers: str) -> httpx.Response:
    """PUT ``body`` as a robot does: the presigned URL with its headers."""
    return http.put(req.url, content=body, headers={**req.headers, **headers})


def block_of(data: bytes, d: BlobDigest, number: int) -> bytes:
    b = d.blocks[number - 1]
    return data[b.offset : b.offset + b.size]


def tamper(body: bytes) -> bytes:
    return bytes([body[0] ^ 0xFF]) + body[1:]


def upload_parts(
    http: httpx.Client, store: BlobStore, data: bytes, d: BlobDigest, upload_id: str
) -> list[tuple[int, str, str]]:
    done = []
    for b in d.blocks:
        req = store.presign_part(key_of(d), upload_id, b.number, b.sha256_b64, b.size)
        r = put(http, req, block_of(data, d, b.number))
        assert r.status_code == 200, r.text
        done.append((b.number, r.headers["ETag"], b.sha256_b64))
    return done


@pytest.fixture(scope="module")
def three_blocks() -> tuple[bytes, BlobDigest]:
    data = os.urandom(2 * BLOCK_SIZE + 12345)
    return data, digest_bytes(data)


def test_single_put_round_trip_and_head_proves_digest(
    store_case: StoreCase, http: httpx.Client
) -> None:
    store = store_case.store
    data = os.urandom(100_000)
    d = digest_bytes(data)
    r = put(http, store.presign_put(key_of(d), d.blocks[0].sha256_b64, d.size), data)
    assert r.status_code == 200, r.text
    assert r.headers.get("ETag")

    info = store.head(key_of(d))
    assert info is not None
    assert info.size == d.size
    assert info.checksum_sha256 == d.blocks[0].sha256_b64
    assert digest_from_s3_checksum(info.checksum_sha256) == (d.digest, 1)

    got = http.get(store.presign_get(key_of(d)))
    assert got.status_code == 200
    assert got.content == data


def test_empty_blob_is_one_empty_block(store_case: StoreCase, http: httpx.Client) -> None:
    store = store_case.store
    d = digest_bytes(b"")
    r = put(http, store.presign_put(key_of(d), d.blocks[0].sha256_b64, 0), b"")
    assert r.status_code == 200, r.text
    info = store.head(key_of(d))
    assert info is not None and info.size == 0
    assert info.checksum_sha256 is not None
    assert digest_from_s3_checksum(info.checksum_sha256) == (d.digest, 1)
    assert http.get(store.presign_get(key_of(d))).content == b""


def test_multipart_resume_and_composite_checksum_equals_digest(
    store_case: StoreCase, http: httpx.Client, three_blocks: tuple[bytes, BlobDigest]
) -> None:
    store = store_case.store
    data, d = three_blocks
    key = key_of(d)
    upload_id = store.create_multipart(key)
    assert store.list_parts(key, upload_id) == []

    first = d.blocks[0]
    r = put(
        http, store.presign_part(key, upload_id, 1, first.sha256_b64, first.size), data[:BLOCK_SIZE]
    )
    assert r.status_code == 200, r.text
    listed = store.list_parts(key, upload_id)
    assert listed is not None
    assert [(p.number, p.etag, p.size) for p in listed] == [(1, r.headers["ETag"], BLOCK_SIZE)]

    parts = [(1, r.headers["ETag"], first.sha256_b64)]
    for b in d.blocks[1:]:
        rp = put(
            http,
            store.presign_part(key, upload_id, b.number, b.sha256_b64, b.size),
            block_of(data, d, b.number),
        )
        assert rp.status_code == 200, rp.text
        parts.append((b.number, rp.headers["ETag"], b.sha256_b64))
    assert store.head(key) is None  # nothing is visible before completion

    store.complete_multipart(key, upload_id, parts)
    info = store.head(key)
    assert info is not None
    assert info.size == len(data)
    assert info.checksum_sha256 == composite_checksum(d.digest, 3)
    assert digest_from_s3_checksum(info.checksum_sha256) == (d.digest, 3)
    assert store.list_parts(key, upload_id) is None

    url = store.presign_get(key)
    assert http.get(url).content == data
    ranged = http.get(url, headers={"Range": f"bytes={BLOCK_SIZE - 5}-{BLOCK_SIZE + 4}"})
    assert ranged.status_code == 206
    assert ranged.content == data[BLOCK_SIZE - 5 : BLOCK_SIZE + 5]


def test_tampered_single_put_is_refused_and_never_stored(
    store_case: StoreCase, http: httpx.Client
) -> None:
    store = store_case.store
    data = os.urandom(5000)
    d = digest_bytes(data)
    r = put(http, store.presign_put(key_of(d), d.blocks[0].sha256_b64, d.size), tamper(data))
    assert r.status_code == 400
    assert store.head(key_of(d)) is None


def test_tampered_part_is_refused_and_upload_cannot_complete_with_it(
    store_case: StoreCase, http: httpx.Client, three_blocks: tuple[bytes, BlobDigest]
) -> None:
    store = store_case.store
    data, d = three_blocks
    key = key_of(d)
    upload_id = store.create_multipart(key)
    b = d.blocks[1]
    bad = put(
        http,
        store.presign_part(key, upload_id, 2, b.sha256_b64, b.size),
        tamper(block_of(data, d, 2)),
    )
    assert bad.status_code == 400
    assert store.list_parts(key, upload_id) == []
    with pytest.raises(RobosyncError):
        store.complete_multipart(key, upload_id, [(2, '"0123456789abcdef"', b.sha256_b64)])
    store.abort_multipart(key, upload_id)


def test_wrong_checksum_header_or_none_is_refused(
    store_case: StoreCase, http: httpx.Client
) -> None:
    store = store_case.store
    data = os.urandom(3000)
    d = digest_bytes(data)
    req = store.presign_put(key_of(d), d.blocks[0].sha256_b64, d.size)
    other = digest_bytes(tamper(data)).blocks[0].sha256_b64
    # The header matches the body sent, but not the checksum the URL was signed for.
    r = put(http, req, tamper(data), **{CHECKSUM: other})
    assert r.status_code == 403
    r = http.put(req.url, content=data)  # no checksum header at all
    assert r.status_code == 403
    assert store.head(key_of(d)) is None


@pytest.mark.parametrize("delta", [-1, 1])
def test_body_of_another_size_is_refused(
    store_case: StoreCase, http: httpx.Client, delta: int
) -> None:
    store = store_case.store
    data = os.urandom(4000)
    d = digest_bytes(data)
    req = store.presign_put(key_of(d), d.blocks[0].sha256_b64, d.size)
    body = data[:-1] if delta < 0 else data + b"x"
    r = put(http, req, body)
    assert 400 <= r.status_code < 500
    assert store.head(key_of(d)) is None


def test_get_url_does_not_allow_put_and_put_url_does_not_allow_get(
    store_case: StoreCase, http: httpx.Client
) -> None:
    store = store_case.store
    data = os.urandom(2000)
    d = digest_bytes(data)
    put_req = store.presign_put(key_of(d), d.blocks[0].sha256_b64, d.size)
    r = put(http, PresignedRequest(store.presign_get(key_of(d)), put_req.headers), data)
    assert r.status_code == 403
    assert store.head(key_of(d)) is None
    assert put(http, put_req, data).status_code == 200
    assert http.get(put_req.url).status_code == 403


def test_expired_urls_are_refused(store_case: StoreCase, http: httpx.Client) -> None:
    store, short = store_case.store, store_case.with_expiry(1)
    stored, fresh = os.urandom(1000), os.urandom(1000)
    ds, df = digest_bytes(stored), digest_bytes(fresh)
    ok = put(http, store.presign_put(key_of(ds), ds.blocks[0].sha256_b64, ds.size), stored)
    assert ok.status_code == 200
    get_url = short.presign_get(key_of(ds))
    put_req = short.presign_put(key_of(df), df.blocks[0].sha256_b64, df.size)
    time.sleep(2.2)
    assert http.get(get_url).status_code == 403
    assert put(http, put_req, fresh).status_code == 403
    assert store.head(key_of(df)) is None


def test_delete_removes_object_and_repeats_quietly(
    store_case: StoreCase, http: httpx.Client
) -> None:
    store = store_case.store
    data = os.urandom(1500)
    d = digest_bytes(data)
    assert (
        put(http, store.presign_put(key_of(d), d.blocks[0].sha256_b64, d.size), data).status_code
        == 200
    )
    store.delete(key_of(d))
    assert store.head(key_of(d)) is None
    assert http.get(store.presign_get(key_of(d))).status_code == 404
    store.delete(key_of(d))


def test_abort_drops_parts_and_later_part_puts_fail(
    store_case: StoreCase, http: httpx.Client, three_blocks: tuple[bytes, BlobDigest]
) -> None:
    store = store_case.store
    data, d = three_blocks
    key = key_of(d)
    upload_id = store.create_multipart(key)
    b1, b2 = d.blocks[0], d.blocks[1]
    assert (
        put(
            http,
            store.presign_part(key, upload_id, 1, b1.sha256_b64, b1.size),
            block_of(data, d, 1),
        ).status_code
        == 200
    )
    late = store.presign_part(key, upload_id, 2, b2.sha256_b64, b2.size)
    store.abort_multipart(key, upload_id)
    assert store.list_parts(key, upload_id) is None
    assert put(http, late, block_of(data, d, 2)).status_code == 404
    store.abort_multipart(key, upload_id)  # already gone: no error


def test_complete_with_wrong_etag_is_refused(
    store_case: StoreCase, http: httpx.Client, three_blocks: tuple[bytes, BlobDigest]
) -> None:
    store = store_case.store
    data, d = three_blocks
    key = key_of(d)
    store.delete(key)
    upload_id = store.create_multipart(key)
    parts = upload_parts(http, store, data, d, upload_id)
    wrong = [(n, '"' + "0" * 32 + '"' if n == 2 else etag, c) for n, etag, c in parts]
    with pytest.raises(RobosyncError):
        store.complete_multipart(key, upload_id, wrong)
    assert store.head(key) is None
    store.abort_multipart(key, upload_id)


def test_list_parts_of_unknown_upload_is_none(store_case: StoreCase) -> None:
    d = digest_bytes(b"unknown upload")
    assert store_case.store.list_parts(key_of(d), "0" * 32) is None


def test_check_passes_on_a_working_store(store_case: StoreCase) -> None:
    store_case.store.check()
