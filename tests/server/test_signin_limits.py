"""Console sign-in limits: every attempt counts per address, only failures per user."""

from __future__ import annotations

import pytest

from robosync.errors import RateLimited
from robosync.server.limits import RateLimiter


def test_attempts_from_one_address_are_refused_past_the_rate() -> None:
    limiter = RateLimiter(None)
    for _ in range(3):
        limiter.check_signin("3/minute", "address", "10.0.0.7")
    with pytest.raises(RateLimited, match="too many sign-in attempts") as refused:
        limiter.check_signin("3/minute", "address", "10.0.0.7")
    assert refused.value.details["retry_after"] >= 1
    limiter.check_signin("3/minute", "address", "10.0.0.8")  # another address is not affected


def test_only_failures_count_against_a_user_name() -> None:
    limiter = RateLimiter(None)
    for _ in range(10):  # looking does not count: a person signing in often is never locked out
        limiter.check_signin("2/minute", "user", "ana", count=False)
    limiter.count_signin("2/minute", "user", "ana")
    limiter.count_signin("2/minute", "user", "ana")
    with pytest.raises(RateLimited):
        limiter.check_signin("2/minute", "user", "ana", count=False)
