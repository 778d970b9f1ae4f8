"""The one retry wrapper of the client: every API call and every transfer goes through it.

Transient failures (connection errors, timeouts, HTTP 408, 500, 502, 503, 504)
are retried with exponential backoff and jitter, bounded in attempts. A 429
("over your limit, come back later") is not a failure of the request: it is
retried after the server's ``Retry-After`` (plus jitter, so robots refused
together do not all come back in the same instant), bounded by a total
waiting time instead of a number of attempts. Anything else (a 4xx that says
what is wrong) is raised at once.

A server that refuses the very first connection of a command (down, or a
mistyped URL) is given a short budget instead (``unreachable_attempts``, about
a second apart, ~5 s in all), each retry said on the log at WARNING level
("server at URL unreachable, retry 2/5"), so a command fails fast and says
why. Once the server has answered, a refused connection is a server that
went away mid-transfer and keeps the long budget.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from robosync.client.deferred import httpx
from robosync.client.logs import logger
from robosync.errors import RobosyncError, Unavailable
from robosync.values import Value

_LOGGER = "robosync.client"

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RATE_LIMITED_STATUS = 429


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


def is_unreachable(err: BaseException) -> bool:
    """Whether ``err`` is a connection that could not be opened (refused, no route, timeout)."""
    return isinstance(err, httpx.ConnectError | httpx.ConnectTimeout)


def origin_of(err: BaseException) -> str:
    """``scheme://host:port`` of the request ``err`` failed on, if known."""
    try:
        url = err.request.url  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return "the server"
    return f"{url.scheme}://{url.netloc.decode()}"


def is_rate_limited(err: BaseException) -> bool:
    """Whether ``err`` is a 429: the server asks to come back later."""
    return isinstance(err, RobosyncError) and transient_status(err) == RATE_LIMITED_STATUS


@dataclass(eq=False, repr=False)
class Retrying(Value):
    """Call a function until it succeeds, a permanent error occurs, or patience runs out.

    ``attempts`` bounds the calls spent on failures (connection errors, 5xx);
    ``rate_limited_wait`` bounds the seconds spent waiting on 429 answers.
    """

    attempts: int = 7
    base_delay: float = 0.5
    max_delay: float = 30.0
    rate_limited_wait: float = 600.0
    unreachable_attempts: int = 5
    unreachable_delay: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``.

        With ``retry_after`` it is that, plus up to a quarter more; else "equal
        jitter": half the exponential step plus a random share of the other
        half. Full jitter could spend every attempt within a second, before a
        restarting server is back; this way 7 attempts span at least ~15 s.
        """
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), self.max_delay * 4)
            return wait + self.rng.uniform(0, max(wait, 0.4) / 4)
        step = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return step / 2 + self.rng.uniform(0, step / 2)

    def call(self, fn: Callable[[], T], what: str = "request", *, first_contact: bool = False) -> T:
        """Run ``fn`` with retries on transient errors.

        ``first_contact``: the server has not answered this session yet, so a
        connection it refuses gets the short ``unreachable_attempts`` budget and
        ends in :class:`Unavailable` naming the URL.
        """
        failures = refusals = unreachable = 0
        waited = 0.0
        while True:
            try:
                return fn()
            except Exception as e:
                if not is_transient(e):
                    raise
                if first_contact and is_unreachable(e):
                    unreachable += 1
                    where = origin_of(e)
                    if unreachable >= self.unreachable_attempts:
                        raise Unavailable(
                            f"server at {where} unreachable ({str(e) or type(e).__name__}) "
                            f"after {unreachable} attempts; check the URL and that the server "
                            "is running",
                            {"server": where},
                        ) from e
                    logger(_LOGGER).warning(
                        "server at %s unreachable, retry %d/%d",
                        where,
                        unreachable + 1,
                        self.unreachable_attempts,
                    )
                    self.sleep(self.unreachable_delay * self.rng.uniform(0.8, 1.2))
                    continue
                if is_rate_limited(e):
                    refusals += 1
                    pause = self.delay(min(refusals, 8), retry_after_of(e))
                    if waited + pause > self.rate_limited_wait:
                        raise
                    waited += pause
                else:
                    failures += 1
                    if failures >= self.attempts:
                        raise
                    pause = self.delay(failures, retry_after_of(e))
                logger(_LOGGER).debug("%s failed (%s); retry in %.2fs", what, e, pause)
                self.sleep(pause)
