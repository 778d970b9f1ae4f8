"""The per-user request rate: shared by replicas through Redis, per process in memory."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from robosync.errors import RateLimited, error_from_body
from robosync.server.limits import REQUESTS, RateLimiter


def fill(limiter: RateLimiter, user_id: int, n: int) -> None:
    """Make ``n`` requests that must all be accepted."""
    for _ in range(n):
        limiter.check_request(user_id)


def refusal(limiter: RateLimiter, user_id: int) -> RateLimited:
    """The error of one request that must be refused."""
    with pytest.raises(RateLimited) as caught:
        limiter.check_request(user_id)
    return caught.value


def test_user_over_the_rate_on_one_replica_is_refused_on_the_other(
    redis_url: str, key_prefix: str
) -> None:
    replica_a = RateLimiter("5/10seconds", redis_url, key_prefix=key_prefix)
    replica_b = RateLimiter("5/10seconds", redis_url, key_prefix=key_prefix)
    fill(replica_a, 1, 3)
    fill(replica_b, 1, 2)
    err = refusal(replica_b, 1)
    assert err.details["limit"] == REQUESTS
    assert refusal(replica_a, 1).details["limit"] == REQUESTS


def test_requests_counted_by_another_process_count_here(redis_url: str, key_prefix: str) -> None:
    other_replica = (
        "import sys; from robosync.server.limits import RateLimiter; "
        "limiter = RateLimiter('5/10seconds', sys.argv[1], key_prefix=sys.argv[2]); "
        "[limiter.check_request(11) for _ in range(5)]"
    )
    subprocess.run([sys.executable, "-c", other_replica, redis_url, key_prefix], check=True)
    here = RateLimiter("5/10seconds", redis_url, key_prefix=key_prefix)
    assert refusal(here, 11).details["limit"] == REQUESTS
    here.check_request(12)


def test_another_user_is_not_slowed_by_a_flooding_one(redis_url: str, key_prefix: str) -> None:
    replica_a = RateLimiter("5/10seconds", redis_url, key_prefix=key_prefix)
    replica_b = RateLimiter("5/10seconds", redis_url, key_prefix=key_prefix)
    fill(replica_a, 1, 5)
    for _ in range(20):
        with pytest.raises(RateLimited):
            replica_a.check_request(1)
    fill(replica_b, 2, 5)


def test_retry_after_is_positive_and_within_the_window(redis_url: str, key_prefix: str) -> None:
    limiter = RateLimiter("5/10seconds", redis_url, key_prefix=key_prefix)
    fill(limiter, 7, 5)
    err = refusal(limiter, 7)
    assert 1 <= err.retry_after <= 10
    assert err.details["retry_after"] == int(err.details["retry_after"])
    assert "5/10seconds" in err.message


def test_waiting_retry_after_lets_the_user_in_again(redis_url: str, key_prefix: str) -> None:
    replica_a = RateLimiter("3/second", redis_url, key_prefix=key_prefix)
    replica_b = RateLimiter("3/second", redis_url, key_prefix=key_prefix)
    fill(replica_a, 3, 3)
    err = refusal(replica_b, 3)
    assert err.retry_after == 1
    time.sleep(err.retry_after + 0.05)
    fill(replica_b, 3, 3)


def test_refusal_survives_the_trip_to_the_client_as_the_same_error(
    redis_url: str, key_prefix: str
) -> None:
    limiter = RateLimiter("1/minute", redis_url, key_prefix=key_prefix)
    limiter.check_request(9)
    err = refusal(limiter, 9)
    again = error_from_body(err.status, err.to_body())
    assert err.status == 429
    assert isinstance(again, RateLimited)
    assert again.details["limit"] == REQUESTS
    assert 1 <= again.retry_after <= 60


def test_memory_limiter_limits_within_one_process() -> None:
    limiter = RateLimiter("4/10seconds")
    assert not limiter.shared
    fill(limiter, 1, 4)
    assert refusal(limiter, 1).details["limit"] == REQUESTS
    fill(limiter, 2, 4)


def test_memory_limiter_window_resets() -> None:
    limiter = RateLimiter("2/second")
    fill(limiter, 1, 2)
    err = refusal(limiter, 1)
    time.sleep(err.retry_after + 0.05)
    fill(limiter, 1, 2)


def test_no_rate_means_no_limit() -> None:
    limiter = RateLimiter(None)
    fill(limiter, 1, 1000)
    fill(RateLimiter(""), 1, 1000)


def test_a_malformed_rate_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match="1200/minute"):
        RateLimiter("lots")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_redis_lets_requests_through_quickly() -> None:
    limiter = RateLimiter("1/minute", f"redis://127.0.0.1:{_closed_port()}/0")
    start = time.monotonic()
    fill(limiter, 1, 5)
    assert time.monotonic() - start < 5
    assert not limiter.healthy()


def test_reset_clears_a_lock_out(redis_url: str, key_prefix: str) -> None:
    limiter = RateLimiter("1/minute", redis_url, key_prefix=key_prefix)
    limiter.check_request(4)
    refusal(limiter, 4)
    assert limiter.healthy()
    limiter.reset()
    limiter.check_request(4)
