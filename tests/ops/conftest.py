"""A server of its own per module (garbage collection must not touch other tests' blobs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from robosync.server.app import build_store
from robosync.server.db.engine import Database
from robosync.server.settings import ENV_PREFIX, Settings
from robosync.server.store.base import BlobStore
from tests.fixtures.postgres import fresh_database
from tests.fixtures.server import ServerProcess
from tests.server.robot import Robot


class OpsServer:
    """A running server plus direct handles on its database and blob store."""

    def __init__(self, proc: ServerProcess) -> None:
        self.proc = proc
        overrides = {
            k.removeprefix(ENV_PREFIX).lower(): v
            for k, v in proc.env.items()
            if k.startswith(ENV_PREFIX)
            and k.removeprefix(ENV_PREFIX).lower() in Settings.model_fields
        }
        self.settings = Settings(**overrides)
        self.db = Database(self.settings.effective_database_url)
        self.store: BlobStore = build_store(self.settings)

    def robot(self, user: str = "ops") -> Robot:
        """A robot with a new token of ``user``."""
        return Robot(self.proc.url, self.proc.make_token(user, "r-" + uuid.uuid4().hex[:8]))


@pytest.fixture(scope="module", params=["embedded", "pg-s3"])
def ops_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpsServer]:
    """A server on a fresh database and bucket (embedded or PostgreSQL + SeaweedFS)."""
    env = dict(getattr(request.module, "SERVER_ENV", {}))
    if request.param == "embedded":
        yield from _serve(env, tmp_path_factory)
        return
    s3 = request.getfixturevalue("seaweedfs")
    request.getfixturevalue("pg_url")  # skips (or fails in CI) without PostgreSQL
    with fresh_database("robosync_ops") as url:
        env.update(
            {
                "ROBOSYNC_DATABASE_URL": url,
                **s3.server_env(),
            }
        )
        yield from _serve(env, tmp_path_factory)


def _serve(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsServer]:
    proc = ServerProcess(tmp_path_factory.mktemp("ops-server"), env).start()
    server = OpsServer(proc)
    try:
        yield server
    finally:
        proc.stop()
        server.db.dispose()
