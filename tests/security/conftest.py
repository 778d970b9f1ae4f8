"""Fixtures of the security tests: two users' robots, and servers with special settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.server import ServerProcess
from tests.server.robot import Robot


def robot_of(server: ServerProcess, user: str) -> Robot:
    """A robot of ``user`` (created if needed) with a fresh token."""
    return Robot(server.url, server.make_token(user, "robot-" + uuid.uuid4().hex[:8]))


@pytest.fixture(scope="session")
def owner(server: ServerProcess) -> Iterator[Robot]:
    """A robot of the user whose projects the tests attack."""
    robot = robot_of(server, "owner-" + uuid.uuid4().hex[:6])
    yield robot
    robot.close()


@pytest.fixture(scope="session")
def intruder(server: ServerProcess) -> Iterator[Robot]:
    """A robot of another user, holding a perfectly valid token of its own."""
    robot = robot_of(server, "intruder-" + uuid.uuid4().hex[:6])
    yield robot
    robot.close()


def start_server(data_dir: Path, env: dict[str, str]) -> ServerProcess:
    """A server of its own (for settings the shared one must not have)."""
    return ServerProcess(data_dir, env).start()


@pytest.fixture(scope="session")
def lone_embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An embedded server without rate limits, for fuzzing and store-URL attacks."""
    env = {"ROBOSYNC_RATE_LIMIT": "", "ROBOSYNC_MAX_INFLIGHT_UPLOADS": "0"}
    server = start_server(tmp_path_factory.mktemp("lone-embedded"), env)
    yield server
    server.stop()
