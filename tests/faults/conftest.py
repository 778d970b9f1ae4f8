"""Fault tests: each test gets its own server processes, because it kills or stops them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text

from tests.client.conftest import Robot, folder_digests
from tests.client.proxy import CountingProxy
from tests.fixtures.server import ServerProcess


@pytest.fixture(params=["embedded", "pg-s3"])
def fresh_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment of a server of its own: SQLite + local store, or PostgreSQL + SeaweedFS."""
    if request.param == "embedded":
        return {}
    return dict(request.getfixturevalue("pg_s3_env"))


class Lab:
    """Servers and proxies of one test, all stopped when it ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.servers: list[ServerProcess] = []
        self.proxies: list[CountingProxy] = []

    def server(self, env: dict[str, str], *, start: bool = True) -> ServerProcess:
        """A server process with ``env`` (started unless ``start`` is false)."""
        proc = ServerProcess(self.folder / f"server-{len(self.servers)}", env)
        self.servers.append(proc)
        return proc.start() if start else proc

    def proxy(self, host: str, port: int, rate: float | None = None) -> CountingProxy:
        """A running counting proxy to ``host:port``."""
        proxy = CountingProxy(host, port, rate).start()
        self.proxies.append(proxy)
        return proxy

    def store_proxy(self, server: ServerProcess, rate: float | None = None) -> CountingProxy:
        """Send the robots' blob traffic of ``server`` (not started yet) through a proxy."""
        s3 = server.env.get("ROBOSYNC_S3_ENDPOINT")
        if s3:
            parts = urlsplit(s3)
            proxy = self.proxy(parts.hostname or "127.0.0.1", parts.port or 80, rate)
            server.env["ROBOSYNC_S3_PUBLIC_ENDPOINT"] = proxy.url
        else:
            proxy = self.proxy("127.0.0.1", server.port, rate)
            server.env["ROBOSYNC_PUBLIC_URL"] = proxy.url
        return proxy

    def close(self) -> None:
        """Stop every server and proxy."""
        for proc in self.servers:
            proc.stop()
        for proxy in self.proxies:
            proxy.stop()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Servers and proxies of this test."""
    made = Lab(tmp_path)
    yield made
    made.close()


@dataclass
class Site:
    """One user on one server: makes robots and checks what the server holds."""

    server: ServerProcess
    token: str
    home: Path

    def robot(self, name: str, server_url: str | None = None) -> Robot:
        """A robot of the user (talking to ``server_url``, default the server)."""
        return Robot(name, server_url or self.server.url, self.token, self.home / name)

    def database_url(self) -> str:
        """SQLAlchemy URL of the server's metadata database."""
        return self.server.env.get("ROBOSYNC_DATABASE_URL") or (
            f"sqlite:///{self.server.data_dir / 'robosync.sqlite'}"
        )

    def project_state(self, name: str) -> dict[str, int]:
        """Head, version rows, live file rows and file count of project ``name``, from the DB."""
        engine = create_engine(self.database_url())
        try:
            with engine.connect() as conn:
                pid, head, count = conn.execute(
                    text("SELECT id, head_version, file_count FROM projects WHERE name = :n"),
                    {"n": name},
                ).one()
                versions = conn.execute(
                    text("SELECT count(*) FROM versions WHERE project_id = :p AND number > 0"),
                    {"p": pid},
                ).scalar_one()
                live = conn.execute(
                    text("SELECT count(*) FROM files WHERE project_id = :p AND removed_in IS NULL"),
                    {"p": pid},
                ).scalar_one()
        finally:
            engine.dispose()
        return {"head": head, "versions": versions, "live": live, "file_count": count}

    def assert_clone_matches(self, name: str, expected: dict[str, str]) -> None:
        """A fresh clone of ``name`` holds exactly ``expected`` (path -> SHA-256)."""
        r = self.robot(f"verifier-{uuid.uuid4().hex[:6]}")
        r.home.mkdir(parents=True)
        r.cli("clone", name, str(r.root))
        got = folder_digests(r.root)
        assert got.keys() == expected.keys(), sorted(set(got) ^ set(expected))[:10]
        bad = [p for p in expected if got[p] != expected[p]]
        assert not bad, f"{len(bad)} files differ, e.g. {bad[:5]}"


@pytest.fixture
def site_on(tmp_path: Path) -> Callable[[ServerProcess], Site]:
    """A fresh user on a given server."""

    def make(server: ServerProcess) -> Site:
        user = f"user-{uuid.uuid4().hex[:8]}"
        return Site(server, server.make_token(user, "fleet"), tmp_path / user)

    return make


def start_cli(robot: Robot, *args: str) -> subprocess.Popen[str]:
    """Start ``robosync ARGS`` in the robot's folder without waiting for it."""
    robot.root.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "robosync.client.cli", *args],
        cwd=robot.root,
        env=robot.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_images(root: Path, count: int, size: int, prefix: str = "img", seed: str = "") -> None:
    """``count`` distinct files of ``size`` bytes under ``root/prefix/``."""
    folder = root / prefix
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        head = f"{seed}{prefix}-{i}-".encode()
        (folder / f"{i:06d}.png").write_bytes(head + os.urandom(max(0, size - len(head))))
