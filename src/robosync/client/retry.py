"""The one retry wrapper of the client: every API call and every transfer goes through it.

Transient failures (connection errors, timeouts, HTTP 429, 500, 502, 503, 504)
are retried with exponential backoff and full jitter, bounded in attempts;
``Retry-After`` from the server wins over the computed delay. Anything else
(a 4xx that says what is wrong) is raised at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from robosync.errors import RobosyncError

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
log = logging.getLogger("robosync.client")


def transient_status(err: RobosyncError) -> int | None:
    """The HTTP status of ``err`` if it is worth retrying, else ``None``."""
    status = err.details.get("http_status")
    if isinstance(status, int) and status in TRANSIENT_STATUS:
        return status
    return None


def retry_after_of(err: BaseException) -> float | None:
    """Seconds the server asked us to wait, if it said."""
    if isinstance(err, RobosyncError):
        value = err.details.get("retry_after")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None
    return None


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` may go away by itself."""
    if isinstance(err, httpx.TransportError):
        return True
    return isinstance(err, RobosyncError) and transient_status(err) is not None


@dataclass
class Retrying:
    """Call a function until it succeeds, a permanent error occurs, or attempts run out."""

    attempts: int = 7
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (full jitter, capped)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay * 4)
        return self.rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def call(self, fn: Callable[[], T], what: str = "request") -> T:
        """Run ``fn`` with retries on transient errors."""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as e:
                if attempt == self.attempts or not is_transient(e):
                    raise
                pause = self.delay(attempt, retry_after_of(e))
                log.debug("%s failed (%s); retry %d in %.2fs", what, e, attempt, pause)
                self.sleep(pause)
        raise AssertionError("unreachable")
