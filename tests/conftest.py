"""Shared fixtures: real PostgreSQL, SeaweedFS and robosync-server processes."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.seaweedfs",
    "tests.fixtures.server",
]
