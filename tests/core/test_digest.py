"""The content address: block tree hashing and its S3 checksum equivalence."""

from __future__ import annotations

import base64
import hashlib

import pytest

from robosync.digest import (
    BLOCK_SIZE,
    BlockVerifier,
    block_count,
    block_layout,
    composite_checksum,
    digest_bytes,
    digest_file,
    digest_from_s3_checksum,
    is_digest,
)


def reference_digest(data: bytes) -> str:
    """The DESIGN.md definition, written the slow obvious way."""
    blocks = [data[i : i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE)] or [b""]
    return hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in blocks)).hexdigest()


@pytest.mark.parametrize(
    "size",
    [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 2 * BLOCK_SIZE, 2 * BLOCK_SIZE + 7],
)
def test_digest_matches_the_design_definition(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    d = digest_bytes(data)
    assert d.digest == reference_digest(data)
    assert d.size == size
    assert len(d.blocks) == block_count(size)
    assert [(b.offset, b.size) for b in d.blocks] == block_layout(size)
    assert is_digest(d.digest)


def test_empty_file_is_one_empty_block() -> None:
    d = digest_bytes(b"")
    assert len(d.blocks) == 1
    assert d.blocks[0].sha256 == hashlib.sha256(b"").digest()


def test_digest_file_equals_digest_bytes(tmp_path) -> None:
    data = b"x" * (BLOCK_SIZE + 3)
    p = tmp_path / "img.raw"
    p.write_bytes(data)
    assert digest_file(p) == digest_bytes(data)


def test_single_put_checksum_maps_to_digest() -> None:
    body = b"one block image"
    s3_value = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert digest_from_s3_checksum(s3_value) == (digest_bytes(body).digest, 1)


def test_composite_checksum_round_trips() -> None:
    d = digest_bytes(b"y" * (2 * BLOCK_SIZE + 1))
    value = composite_checksum(d.digest, 3)
    assert value.endswith("-3")
    assert digest_from_s3_checksum(value) == (d.digest, 3)


def test_verifier_accepts_exact_bytes_in_any_chunking() -> None:
    data = b"z" * (BLOCK_SIZE + 100)
    d = digest_bytes(data)
    v = BlockVerifier(d.digest, d.size)
    for i in range(0, len(data), 777_777):
        v.update(data[i : i + 777_777])
    assert v.problem() is None


@pytest.mark.parametrize(
    "mutate",
    [lambda b: b[:-1], lambda b: b + b"!", lambda b: b[:10] + b"X" + b[11:]],
    ids=["truncated", "extended", "flipped"],
)
def test_verifier_names_the_problem_of_damaged_bytes(mutate) -> None:
    data = b"w" * 5000
    d = digest_bytes(data)
    v = BlockVerifier(d.digest, d.size)
    v.update(mutate(data))
    problem = v.problem()
    assert problem is not None
    assert "size" in problem or "digest" in problem


@pytest.mark.parametrize("value", ["", "A" * 64, "g" * 64, "a" * 63, "a" * 65])
def test_malformed_digests_are_rejected(value: str) -> None:
    assert not is_digest(value)
