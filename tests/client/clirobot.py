"""A robot driving the real ``robosync`` command in a chosen folder, for the CLI edge tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import Robot
from tests.fixtures.server import ServerProcess


@dataclass
class CliRobot(Robot):
    """A :class:`Robot` that runs ``robosync`` in any folder, with extra environment."""

    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """The command's environment."""
        return {**super().env(), **self.extra_env}

    def run(
        self, *args: str, cwd: Path | None = None, check: bool = True, umask: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``robosync ARGS`` in ``cwd`` (default the project folder)."""
        where = cwd or self.root
        where.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-m", "robosync.client.cli", *args],
            cwd=where,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,  # noqa: PLW1509
        )
        if check and out.returncode != 0:
            raise AssertionError(f"robosync {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out

    def json(self, *args: str, cwd: Path | None = None) -> Any:
        """``robosync --json ARGS``, parsed."""
        return json.loads(self.run("--json", *args, cwd=cwd).stdout)

    def write(self, path: str, data: bytes) -> Path:
        """Put a file into the robot's folder."""
        p = self.root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p


@dataclass
class CliFleet:
    """Robots of one user on one embedded server started for a test module."""

    server: ServerProcess
    token: str
    base: Path
    made: int = 0

    def robot(self, name: str) -> CliRobot:
        """A new robot with its own home folder."""
        self.made += 1
        return CliRobot(name, self.server.url, self.token, self.base / f"{self.made}-{name}")


@pytest.fixture(scope="module")
def cli_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliFleet]:
    """One embedded server for the module, and a user whose token its robots share."""
    proc = ServerProcess(tmp_path_factory.mktemp("cli-server"), {}).start()
    try:
        token = proc.make_token("edge-user", "token-robot")
        yield CliFleet(proc, token, tmp_path_factory.mktemp("cli-robots"))
    finally:
        proc.stop()
