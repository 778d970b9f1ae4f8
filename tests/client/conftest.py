"""Robots for end-to-end tests: each a folder, a token and its own client config."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from robosync.client import ClientSettings, Project, clone, directio
from robosync.client.index import DIRNAME
from tests.client.proxy import CountingProxy
from tests.fixtures.server import ServerProcess


@dataclass
class Robot:
    """One robot: a name, a token, a folder and the settings its client runs with."""

    name: str
    server: str
    token: str
    home: Path

    @property
    def root(self) -> Path:
        """The robot's project folder."""
        return self.home / "project"

    @property
    def settings(self) -> ClientSettings:
        """Client settings of this robot."""
        return ClientSettings(
            config_dir=self.home / "config", server=self.server, token=self.token, robot=self.name
        )

    def init(self, name: str) -> Project:
        """Create project ``name`` with this robot's folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Project.init(name, self.root, settings=self.settings)

    def clone(self, name: str, version: int | None = None) -> Project:
        """Clone project ``name`` into this robot's folder."""
        return clone(name, self.root, version=version, settings=self.settings)

    def open(self) -> Project:
        """Open this robot's project folder."""
        return Project.open(self.root, settings=self.settings)

    def env(self) -> dict[str, str]:
        """Environment for running the ``robosync`` command as this robot."""
        return {
            **os.environ,
            "ROBOSYNC_CONFIG_DIR": str(self.home / "config"),
            "ROBOSYNC_SERVER": self.server,
            "ROBOSYNC_TOKEN": self.token,
            "ROBOSYNC_ROBOT": self.name,
        }

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``robosync ARGS`` in the robot's folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-m", "robosync.client.cli", *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"robosync {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out


def folder_digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file of a project folder (``.robosync/`` excluded)."""
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] != DIRNAME:
            out[rel.as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def sha(data: bytes) -> str:
    """SHA-256 hex of ``data``."""
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fleet(server: ServerProcess, tmp_path: Path) -> Callable[[str], Robot]:
    """Make robots of one fresh user on the shared server (one token for the user's robots)."""
    user = f"user-{uuid.uuid4().hex[:8]}"
    token = server.make_token(user, "fleet")

    def make(name: str) -> Robot:
        return Robot(name, server.url, token, tmp_path / name)

    return make


def project_name() -> str:
    """A fresh project name."""
    return f"p-{uuid.uuid4().hex[:10]}"


def skip_unless_direct_writes(folder: Path) -> None:
    """Skip the test if the file system under ``folder`` refuses ``O_DIRECT`` (tmpfs)."""
    fd = os.open(folder / "direct-probe", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        supported = directio.try_direct(fd)
    finally:
        os.close(fd)
        os.unlink(folder / "direct-probe")
    if not supported:
        pytest.skip(f"the file system under {folder} refuses O_DIRECT")


@dataclass
class ProxiedServer:
    """A server whose blob store is reached through a :class:`CountingProxy`."""

    server: ServerProcess
    proxy: CountingProxy
    backend: str


@pytest.fixture(scope="module")
def proxied(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxiedServer]:
    """A server of the current backend with a counting proxy in front of its store."""
    env = dict(backend_env)
    proc = ServerProcess(tmp_path_factory.mktemp("proxied"), env)
    if "ROBOSYNC_S3_ENDPOINT" in env:
        s3 = urlsplit(env["ROBOSYNC_S3_ENDPOINT"])
        proxy = CountingProxy(s3.hostname or "127.0.0.1", s3.port or 80).start()
        proc.env["ROBOSYNC_S3_PUBLIC_ENDPOINT"] = proxy.url
        backend = "pg-s3"
    else:
        proxy = CountingProxy("127.0.0.1", proc.port).start()
        proc.env["ROBOSYNC_PUBLIC_URL"] = proxy.url
        backend = "embedded"
    proc.start()
    try:
        yield ProxiedServer(proc, proxy, backend)
    finally:
        proc.stop()
        proxy.stop()


from tests.client.clirobot import cli_fleet  # noqa: E402, F401  (fixture for the CLI edge tests)
