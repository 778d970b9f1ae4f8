"""Direct (page-cache bypassing) writes put exactly the given bytes in the file, whatever
their length or alignment, and fall back to ordinary writes where they must."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from robosync.client import directio
from tests.client.conftest import skip_unless_direct_writes

ALIGN = directio.ALIGN


def _is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0))


def _write_in_chunks(path: Path, data: bytes, chunk: int) -> list[bool]:
    """Write ``data`` as a download does (one aligned buffer, filled chunk by chunk);
    the descriptor's direct state after each chunk."""
    buf = directio.aligned_buffer(chunk)
    states = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        direct = directio.try_direct(fd)
        for start in range(0, len(data), chunk):
            piece = data[start : start + chunk]
            buf[: len(piece)] = piece
            if direct:
                direct = directio.write_direct(fd, buf[: len(piece)])
            else:
                os.write(fd, buf[: len(piece)])
            states.append(direct and _is_direct(fd))
    finally:
        os.close(fd)
    return states


@pytest.mark.parametrize(
    "size",
    [ALIGN, 3 * 65536, 3 * 65536 + 1, 3 * 65536 + 4095, 1_000_000, 100],
    ids=["one-block", "whole-chunks", "one-byte-over", "block-short", "1MB", "tiny"],
)
def test_the_file_holds_exactly_the_bytes_written(tmp_path: Path, size: int):
    data = os.urandom(size)
    path = tmp_path / "image.jpg"
    _write_in_chunks(path, data, 65536)
    assert path.read_bytes() == data


def test_whole_blocks_stay_direct_and_a_short_end_switches_back(tmp_path: Path):
    skip_unless_direct_writes(tmp_path)
    states = _write_in_chunks(tmp_path / "a.jpg", os.urandom(2 * 65536 + 10), 65536)
    assert states == [True, True, False]


def test_a_misaligned_buffer_falls_back_to_the_page_cache_without_losing_bytes(tmp_path: Path):
    buf = directio.aligned_buffer(2 * ALIGN)
    data = os.urandom(ALIGN)
    buf[1 : 1 + ALIGN] = data  # one byte past the page boundary: O_DIRECT refuses it
    path = tmp_path / "odd.jpg"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        if directio.try_direct(fd):
            assert directio.write_direct(fd, buf[1 : 1 + ALIGN]) is False
            assert not _is_direct(fd)
        else:
            os.write(fd, buf[1 : 1 + ALIGN])
    finally:
        os.close(fd)
    assert path.read_bytes() == data
