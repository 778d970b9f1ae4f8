"""Shared fixtures: real PostgreSQL, SeaweedFS and robosync-server processes."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.redis_service",
    "tests.fixtures.seaweedfs",
    "tests.fixtures.server",
    "tests.fixtures.tiny_http",
]
