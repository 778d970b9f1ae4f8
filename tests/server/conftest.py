"""Fixtures of the API tests: robots of two users on the backend's server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.fixtures.server import ServerProcess
from tests.server.robot import Robot


def _robot(server: ServerProcess, user: str) -> Robot:
    return Robot(server.url, server.make_token(user, "robot-" + uuid.uuid4().hex[:8]))


@pytest.fixture(scope="session")
def alice(server: ServerProcess) -> Iterator[Robot]:
    """A robot of user alice."""
    robot = _robot(server, "alice")
    yield robot
    robot.close()


@pytest.fixture(scope="session")
def bob(server: ServerProcess) -> Iterator[Robot]:
    """A robot of user bob."""
    robot = _robot(server, "bob")
    yield robot
    robot.close()
