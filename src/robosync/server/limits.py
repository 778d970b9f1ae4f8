"""Per-user limits: a request rate, and a cap on uploads presigned but not completed.

The request rate is a moving window kept by the maintained ``limits`` library:
in process memory with one replica, in Redis when a Redis URL is given so that
every replica counts against the same window.

The in-flight cap is counted in the metadata database, from the ``uploads``
table, not in a separate counter: the database is shared by all replicas
already, it is the truth about which uploads exist, and a session stops
counting by itself once its presigned URLs have expired, so a robot that
crashed mid-push never locks its user out for longer than that.

Over either limit :class:`~robosync.errors.RateLimited` is raised; the server
answers it with 429, a ``Retry-After`` header and a JSON error whose
``details.limit`` names the limit. Nothing is written before the check, so a
refused request changes nothing and loses nothing already accepted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from robosync.errors import RateLimited
from robosync.server.db.models import BLOB_PRESENT, Blob, Upload, utcnow

log = logging.getLogger(__name__)

REQUESTS = "requests"
SIGNIN = "signin"
INFLIGHT_UPLOADS = "inflight_uploads"

# A Redis that hangs must not hang every API request with it.
_REDIS_TIMEOUT_SECONDS = 0.5
# Refusals and Redis failures are logged at most once per key and interval, so
# a flood does not turn into a flood of log lines.
_LOG_EVERY_SECONDS = 60.0


class _LogThrottle:
    """Says whether a message with a given key may be logged now."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._last: dict[object, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: object) -> bool:
        """True at most once per ``every`` seconds for ``key``."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -math.inf) < self._every:
                return False
            if len(self._last) > 10_000:
                self._last.clear()
            self._last[key] = now
            return True


def parse_rate(rate: str) -> RateLimitItem:
    """The rate ``"N/second|minute|hour|day"`` (e.g. ``"1200/minute"``) as a ``limits`` item."""
    try:
        return parse(rate)
    except ValueError as e:
        raise ValueError(f"invalid rate limit {rate!r}: write it like '1200/minute'") from e


def retry_after_seconds(reset_at: float, now: float) -> int:
    """Whole seconds until ``reset_at`` (epoch seconds), at least 1, as HTTP ``Retry-After``."""
    return max(1, math.ceil(reset_at - now))


class RateLimiter:
    """Per-user request rate over a moving window; shared through Redis if a URL is given.

    If Redis cannot be reached the request is let through and the failure is
    logged: losing the rate limit for a while is better than refusing every
    robot (nginx ``limit_req`` still stands in front).
    """

    def __init__(
        self, rate: str | None, redis_url: str | None = None, *, key_prefix: str = "robosync"
    ) -> None:
        self.rate = rate or None
        self.item = parse_rate(rate) if rate else None
        self.storage: Storage
        if redis_url:
            self.storage = RedisStorage(
                redis_url,
                key_prefix=key_prefix,
                wrap_exceptions=True,
                socket_timeout=_REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
            )
        else:
            self.storage = MemoryStorage()
        self.shared = bool(redis_url)
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._log = _LogThrottle(_LOG_EVERY_SECONDS)

    def check_request(self, user_id: int) -> None:
        """Count one request of ``user_id``; raise :class:`RateLimited` if over the rate."""
        if self.item is None:
            return
        key = str(user_id)
        try:
            if self._limiter.hit(self.item, REQUESTS, key):
                return
            stats = self._limiter.get_window_stats(self.item, REQUESTS, key)
        except StorageError as e:
            if self._log.allow("storage"):
                log.error(
                    "rate-limit storage failed, letting requests through: %s", e.storage_error
                )
            return
        retry_after = retry_after_seconds(stats.reset_time, time.time())
        if self._log.allow((REQUESTS, user_id)):
            log.warning("user %s is over the request rate %s", user_id, self.rate)
        raise RateLimited(
            f"too many requests: the limit is {self.rate} per user; retry in {retry_after} s",
            {"limit": REQUESTS, "rate": self.rate, "retry_after": retry_after},
        )

    def check_signin(self, rate: str, kind: str, key: str, *, count: bool = True) -> None:
        """Raise :class:`RateLimited` if ``kind``/``key`` (a user, an address) is over ``rate``.

        With ``count`` this attempt is counted first; without, only looked at
        (failed attempts are then counted with :meth:`count_signin`). Like
        :meth:`check_request`, shared through Redis when one is configured.
        """
        item = parse_rate(rate)
        try:
            allowed = (
                self._limiter.hit(item, SIGNIN, kind, key)
                if count
                else self._limiter.test(item, SIGNIN, kind, key)
            )
            if allowed:
                return
            stats = self._limiter.get_window_stats(item, SIGNIN, kind, key)
        except StorageError as e:
            if self._log.allow("storage"):
                log.error("rate-limit storage failed, letting sign-ins through: %s", e)
            return
        retry_after = retry_after_seconds(stats.reset_time, time.time())
        if self._log.allow((SIGNIN, kind, key)):
            log.warning("too many sign-in attempts for %s %s", kind, key)
        raise RateLimited(
            f"too many sign-in attempts; wait {retry_after} s and try again",
            {"limit": SIGNIN, "rate": rate, "retry_after": retry_after},
        )

    def count_signin(self, rate: str, kind: str, key: str) -> None:
        """Count a failed sign-in of ``kind``/``key`` against ``rate``."""
        # A storage failure is logged by check_signin; a lost count only loosens the limit.
        with contextlib.suppress(StorageError):
            self._limiter.hit(parse_rate(rate), SIGNIN, kind, key)

    def healthy(self) -> bool:
        """Whether the rate-limit storage answers (always true in memory)."""
        try:
            return bool(self.storage.check())
        except Exception:
            return False

    def reset(self) -> None:
        """Forget every counted request (tests and operators clearing a lock-out)."""
        self.storage.reset()


@dataclass(frozen=True)
class InflightUploads:
    """A user's uploads presigned but not completed, and when the oldest stops counting."""

    count: int
    next_release: datetime | None = None


@dataclass(frozen=True)
class InflightCap:
    """At most ``max_inflight`` uploads presigned but not completed per user (0: no cap).

    A request for more uploads than the cap is still granted when the user has
    none in flight, so that one batch larger than the cap (the protocol allows
    1000 items) makes progress instead of being refused forever.
    """

    max_inflight: int
    retry_hint_seconds: int = 10

    def check(self, inflight: InflightUploads, requested: int, now: datetime | None = None) -> None:
        """Raise :class:`RateLimited` if ``requested`` new uploads would exceed the cap."""
        if self.max_inflight <= 0 or requested <= 0 or inflight.count == 0:
            return
        if inflight.count + requested <= self.max_inflight:
            return
        # A slot frees when the robot completes an upload (usually soon) or at
        # the latest when the oldest session stops counting.
        retry_after = self.retry_hint_seconds
        if inflight.next_release is not None:
            until = (inflight.next_release - (now or utcnow())).total_seconds()
            retry_after = max(1, min(retry_after, math.ceil(until)))
        raise RateLimited(
            f"too many uploads in flight: {inflight.count} presigned but not completed, "
            f"{requested} more asked, the limit is {self.max_inflight} per user; "
            f"complete uploads or retry in {retry_after} s",
            {
                "limit": INFLIGHT_UPLOADS,
                "inflight": inflight.count,
                "requested": requested,
                "max_inflight": self.max_inflight,
                "retry_after": retry_after,
            },
        )


def count_inflight_uploads(
    session: Session, user_id: int, window_seconds: int, now: datetime | None = None
) -> InflightUploads:
    """The user's upload sessions that are open, of a missing blob, and younger than the window.

    ``window_seconds`` is the presigned-URL lifetime: a session older than that
    cannot be PUT to without asking again (which resumes it, not counted as new).
    """
    now = now or utcnow()
    since = now - timedelta(seconds=window_seconds)
    blob_present = exists().where(Blob.digest == Upload.digest, Blob.state == BLOB_PRESENT)
    count, oldest = session.execute(
        select(func.count(Upload.id), func.min(Upload.created_at)).where(
            Upload.user_id == user_id,
            Upload.completed_at.is_(None),
            Upload.expires_at > now,
            Upload.created_at > since,
            ~blob_present,
        )
    ).one()
    if not count:
        return InflightUploads(0)
    release = _as_utc(oldest) + timedelta(seconds=window_seconds)
    return InflightUploads(int(count), release)


def _as_utc(value: datetime) -> datetime:
    # Aggregates skip the column's type decorator: SQLite gives a naive datetime or text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=utcnow().tzinfo)
    return value
