"""The bandwidth cap's wrappers: bytes unchanged, cut into slices, one bucket per process."""

from __future__ import annotations

import io

from robosync.client.bandwidth import SLICE, BandwidthLimiter, process_limiter


class Recording(BandwidthLimiter):
    """A limiter that records what it was asked to let through instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.taken: list[int] = []

    def take(self, nbytes: int) -> None:
        self.taken.append(nbytes)


def test_upload_bodies_pass_unchanged_in_slices():
    limiter = Recording()
    chunks = [b"a" * (3 * SLICE + 5), b"b" * 10]
    out = list(limiter.throttle(chunks))
    assert b"".join(out) == b"".join(chunks)
    assert max(len(p) for p in out) <= SLICE and sum(limiter.taken) == 3 * SLICE + 15


def test_downloads_read_a_slice_at_a_time_and_count_what_arrived():
    limiter = Recording()
    source = io.BytesIO(b"x" * (2 * SLICE + 7))
    read = limiter.readinto(source.readinto)
    buf = memoryview(bytearray(1024 * 1024))
    sizes = []
    while n := read(buf):
        sizes.append(n)
    assert sizes == [SLICE, SLICE, 7] and limiter.taken == sizes


def test_every_transfer_of_the_process_shares_one_bucket():
    assert process_limiter(None) is None
    first = process_limiter(2 * 1024 * 1024)
    assert first is process_limiter(2 * 1024 * 1024) and first is not None
