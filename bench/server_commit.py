"""Measure a 10k-line commit and a 10k-entry manifest download on SQLite and PostgreSQL.

Runs real ``robosync-server serve`` processes (local blob store; the database
is what differs) and prints min / median / max wall time over ``--runs``.
Blob rows for the 10k distinct digests are seeded straight into the database:
uploads are not what is measured here.

    python bench/server_commit.py --runs 5
    python bench/server_commit.py --runs 5 --also /tmp/base/.venv/bin   # before vs after
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402
from tests.fixtures.postgres import fresh_database  # noqa: E402
from tests.fixtures.server import ServerProcess  # noqa: E402
from tests.server.robot import Robot  # noqa: E402

from robosync.server.db.engine import Database  # noqa: E402
from robosync.server.db.models import BLOB_PRESENT, Blob  # noqa: E402

LINES = 10_000


def _digest(i: int) -> str:
    return hashlib.sha256(f"bench-{i}".encode()).hexdigest()


def _seed_blobs(database_url: str, count: int) -> None:
    db = Database(database_url)
    with db.writing() as session:
        session.execute(
            Blob.__table__.insert(),
            [{"digest": _digest(i), "size": 1000 + i, "state": BLOB_PRESENT} for i in range(count)],
        )
        # Every user (the admin whose token commits) possesses them, as after an upload.
        session.execute(
            text(
                "INSERT INTO possessions (user_id, digest, created_at) "
                "SELECT users.id, blobs.digest, blobs.created_at FROM users, blobs"
            )
        )
    db.dispose()


def _put(i: int, path: str) -> dict[str, object]:
    return {"op": "put", "path": path, "digest": _digest(i), "size": 1000 + i}


def _path(i: int) -> str:
    return f"camera-{i % 4}/2026-11-25/session-{i // 1000:03d}/img-{i:06d}.jpg"


def _timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def _one_run(robot: Robot) -> dict[str, float]:
    project = robot.new_project("bench")
    fresh = [_put(i, _path(i)) for i in range(LINES)]

    def commit(base: int, lines: list[dict[str, object]]) -> None:
        r = robot.commit(project, base, lines)
        assert r.status_code == 201, r.text

    times = {"commit 10k new files": _timed(lambda: commit(0, fresh))}
    # A 10k-line delta on a 10k-file project: 5k modified, 2.5k deleted, 2.5k added.
    delta: list[dict[str, object]] = [_put(i + LINES, _path(i)) for i in range(5000)]
    delta += [{"op": "delete", "path": _path(i)} for i in range(5000, 7500)]
    delta += [_put(i, _path(i + LINES)) for i in range(2500)]
    times["commit 10k-line delta on 10k"] = _timed(lambda: commit(1, delta))

    def manifest() -> None:
        count = 0
        with robot.http.stream("GET", f"/v1/projects/{project}/manifest") as r:
            for line in r.iter_lines():
                if line:
                    json.loads(line)
                    count += 1
        assert count == LINES, count

    times["manifest 10k entries"] = _timed(manifest)
    return times


@contextmanager
def _backend(name: str, commands: list[list[str]]) -> Iterator[tuple[list[ServerProcess], str]]:
    """One server per command, all on one fresh database of backend ``name``."""
    with tempfile.TemporaryDirectory(prefix="robosync-bench-") as tmp:
        database = (
            nullcontext(f"sqlite:///{Path(tmp).resolve() / 'robosync.sqlite'}")
            if name == "sqlite"
            else fresh_database("robosync_bench")
        )
        with database as url:
            servers: list[ServerProcess] = []
            try:
                for i, command in enumerate(commands):
                    env = {"ROBOSYNC_DATABASE_URL": url}
                    servers.append(ServerProcess(Path(tmp) / f"s{i}", env, command).start())
                yield servers, url
            finally:
                for server in servers:
                    server.stop()


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        metavar="BIN_DIR",
        help="another installation's bin folder: its server runs alternately on the same database",
    )
    args = parser.parse_args()
    installs = {"this checkout": [sys.executable, "-m", "robosync.server.cli"]} | {
        d.resolve().parent.parent.name: [str(d.resolve() / "robosync-server")] for d in args.also
    }
    rows = []
    for backend in args.backends:
        with _backend(backend, list(installs.values())) as (servers, url):
            _seed_blobs(url, 2 * LINES)
            token = servers[0].first_token
            assert token is not None
            robots = [Robot(server.url, token) for server in servers]
            results: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.runs):
                for install, robot in zip(installs, robots, strict=True):
                    for name, seconds in _one_run(robot).items():
                        results.setdefault((install, name), []).append(seconds)
            for robot in robots:
                robot.close()
        for (install, name), values in results.items():
            rows.append((backend, install, name, values))
        first = list(installs)[0]
        for other in list(installs)[1:]:
            for (install, name), values in list(results.items()):
                if install == first:
                    ratios = [a / b for a, b in zip(values, results[(other, name)], strict=True)]
                    rows.append((backend, f"{first} / {other}", name, ratios))
    print("\n| database | install | operation | min s | median s | max s |")
    print("|---|---|---|---|---|---|")
    for backend, install, name, values in rows:
        print(
            f"| {backend} | {install} | {name} | {min(values):.3f} | "
            f"{statistics.median(values):.3f} | {max(values):.3f} |"
        )
    print(f"\n{args.runs} runs each, alternating installs; each run uses a fresh project.")


if __name__ == "__main__":
    main()
