"""The content address: 8 MiB block SHA-256 tree, equal to S3's composite checksum.

``digest = SHA-256(SHA-256(block_1) || SHA-256(block_2) || ...)`` over 8 MiB
blocks; an empty file is one empty block. Pure functions, no I/O beyond reading
the file that is being hashed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from robosync.values import FrozenValue

BLOCK_SIZE = 8 * 1024 * 1024
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True, eq=False, repr=False)
class Block(FrozenValue):
    """One block of a blob: its place in the file and its SHA-256."""

    number: int  # 1-based, as S3 part numbers
    offset: int
    size: int
    sha256: bytes

    @property
    def sha256_hex(self) -> str:
        """The block's SHA-256 as 64 hex characters."""
        return self.sha256.hex()

    @property
    def sha256_b64(self) -> str:
        """The block's SHA-256 base64-encoded, as ``x-amz-checksum-sha256`` wants it."""
        return base64.b64encode(self.sha256).decode("ascii")


@dataclass(frozen=True, eq=False, repr=False)
class BlobDigest(FrozenValue):
    """The content address of a blob with the blocks it was computed from."""

    digest: str
    size: int
    blocks: tuple[Block, ...]


def is_digest(value: str) -> bool:
    """Whether ``value`` is a well-formed digest (64 lowercase hex characters)."""
    return bool(DIGEST_RE.match(value))


def block_count(size: int) -> int:
    """Number of blocks a blob of ``size`` bytes has (an empty blob has one)."""
    if size < 0:
        raise ValueError("size must not be negative")
    return max(1, -(-size // BLOCK_SIZE))


def block_layout(size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of every block of a blob of ``size`` bytes."""
    return [
        (i * BLOCK_SIZE, min(BLOCK_SIZE, size - i * BLOCK_SIZE)) for i in range(block_count(size))
    ]


def digest_of_block_hashes(block_hashes: Iterable[bytes]) -> str:
    """The digest of a blob given the raw SHA-256 of each of its blocks, in order."""
    outer = hashlib.sha256()
    for h in block_hashes:
        if len(h) != 32:
            raise ValueError("a block hash is 32 bytes")
        outer.update(h)
    return outer.hexdigest()


def iter_blocks(stream: BinaryIO) -> Iterator[Block]:
    """Hash ``stream`` block by block, reading at most 1 MiB at a time."""
    number, offset = 1, 0
    while True:
        h = hashlib.sha256()
        size = 0
        while size < BLOCK_SIZE:
            chunk = stream.read(min(_READ_CHUNK, BLOCK_SIZE - size))
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
        if size == 0 and number > 1:
            return
        yield Block(number, offset, size, h.digest())
        if size < BLOCK_SIZE:
            return
        number += 1
        offset += size


def digest_stream(stream: BinaryIO) -> BlobDigest:
    """The content address of everything ``stream`` yields."""
    blocks = tuple(iter_blocks(stream))
    return BlobDigest(
        digest=digest_of_block_hashes(b.sha256 for b in blocks),
        size=sum(b.size for b in blocks),
        blocks=blocks,
    )


def digest_bytes(data: bytes) -> BlobDigest:
    """The content address of ``data``."""
    import io

    return digest_stream(io.BytesIO(data))


def digest_file(path: str | os.PathLike[str]) -> BlobDigest:
    """The content address of the file at ``path``."""
    with open(path, "rb") as f:
        return digest_stream(f)


def composite_checksum(digest: str, parts: int) -> str:
    """S3's COMPOSITE SHA-256 of a multipart object with this digest: ``base64(digest)-N``."""
    return f"{base64.b64encode(bytes.fromhex(digest)).decode('ascii')}-{parts}"


def digest_from_s3_checksum(checksum: str) -> tuple[str, int]:
    """Translate an S3 ``ChecksumSHA256`` value into ``(digest, parts)``.

    A multipart object answers ``base64(composite)-N``, whose composite is our
    digest. A single PUT answers ``base64(sha256(body))``: the body is the only
    block, so the digest is the SHA-256 of that block hash (parts = 1).
    """
    if "-" in checksum:
        b64, _, n = checksum.rpartition("-")
        return base64.b64decode(b64).hex(), int(n)
    block_hash = base64.b64decode(checksum)
    return digest_of_block_hashes([block_hash]), 1


class BlockVerifier:
    """Verify a blob while it streams in: feed bytes, then check the digest.

    Computes each block's SHA-256 as the bytes pass, so memory stays at one
    hash state whatever the blob size.
    """

    def __init__(self, expected_digest: str, expected_size: int) -> None:
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self._block = hashlib.sha256()
        self._in_block = 0
        self._hashes: list[bytes] = []
        self.received = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Account for the next ``data`` bytes of the blob."""
        view = memoryview(data)
        self.received += len(view)
        while view:
            take = min(len(view), BLOCK_SIZE - self._in_block)
            self._block.update(view[:take])
            self._in_block += take
            view = view[take:]
            if self._in_block == BLOCK_SIZE:
                self._hashes.append(self._block.digest())
                self._block = hashlib.sha256()
                self._in_block = 0

    def block_hashes(self) -> list[bytes]:
        """The SHA-256 of every block fed so far (the last one possibly partial)."""
        hashes = list(self._hashes)
        if self._in_block or not hashes:
            hashes.append(self._block.digest())
        return hashes

    def digest(self) -> str:
        """The digest of everything fed so far."""
        return digest_of_block_hashes(self.block_hashes())

    def problem(self) -> str | None:
        """``None`` if size and digest match, else a sentence saying what is wrong."""
        if self.received != self.expected_size:
            return f"size {self.received} bytes, expected {self.expected_size}"
        got = self.digest()
        if got != self.expected_digest:
            return f"digest {got}, expected {self.expected_digest}"
        return None
