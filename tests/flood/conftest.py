"""Fixtures of the flood and replica tests: Redis, and servers of the test's own."""

from __future__ import annotations

import os

import pytest
import redis

from tests.faults.conftest import Lab, fresh_env, lab, site_on  # noqa: F401  (fixtures)
from tests.limits.availability import service_missing

REDIS_URL = os.environ.get("ROBOSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a Redis that answers PING."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as e:
        service_missing(f"Redis at {REDIS_URL} is unreachable: {e}")
    return REDIS_URL
