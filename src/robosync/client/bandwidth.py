"""One bandwidth cap for every blob transfer of the process, up and down.

A token bucket that lends: a transfer takes the bytes it is about to send
(or has just received) and sleeps off any debt, so concurrent transfers share
the cap and the long-run rate is the cap. The bucket holds at most a tenth
of a second of bytes, and bodies go through it in slices of 64 KiB, so the
rate an observer measures over a few seconds is the cap, not bursts of it
(kernel socket buffers absorb a slice, not a megabyte).

The transfer layer wraps its bodies with :meth:`BandwidthLimiter.throttle`
(uploads) and :meth:`BandwidthLimiter.readinto` (downloads); nothing else
needs to know a cap exists. :func:`process_limiter` hands every transfer of
the process the same bucket, so an agent syncing several folders stays
under one cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

SLICE = 64 * 1024


class BandwidthLimiter:
    """A token bucket of ``rate`` bytes per second, safe to share between threads."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("a bandwidth limit must be more than 0 bytes per second")
        self.rate = float(rate)
        self.burst = max(float(SLICE), self.rate / 10)
        self._tokens = 0.0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> None:
        """Account for ``nbytes`` and sleep until the cap allows them."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= nbytes
            debt = -self._tokens
        if debt > 0:
            time.sleep(debt / self.rate)

    def throttle(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` re-cut into slices, each one let through at the cap's pace."""
        for chunk in chunks:
            for start in range(0, len(chunk), SLICE):
                piece = chunk[start : start + SLICE]
                self.take(len(piece))
                yield piece

    def readinto(self, read: Callable[[memoryview], int]) -> Callable[[memoryview], int]:
        """A ``readinto`` that reads at most a slice at a time, at the cap's pace."""

        def limited(buffer: memoryview) -> int:
            n = read(buffer[:SLICE])
            if n:
                self.take(n)
            return n

        return limited


_shared: BandwidthLimiter | None = None
_shared_lock = threading.Lock()


def process_limiter(rate: float | None) -> BandwidthLimiter | None:
    """The process's one limiter at ``rate`` bytes/s (``None``: no cap)."""
    global _shared
    if not rate:
        return None
    with _shared_lock:
        if _shared is None or _shared.rate != float(rate):
            _shared = BandwidthLimiter(rate)
        return _shared
