"""Measure commits, a manifest and an upload plan as PostgreSQL's tables grow.

Creates a fresh PostgreSQL database (dropped at the end), fills it with
synthetic rows by COPY (``tests/scale/synthetic.py``: 2,000 projects, ``files``
rows up to each level, 0.75 blobs per file row), and at each level runs a real
``robosync-server serve`` process (PostgreSQL + local blob store: only the
metadata path is measured; no image bytes move) and times, from an HTTP client:

- commit of a 100-line delta and of a 10k-line delta on a 10k-file project,
- the manifest (NDJSON, parsed) of that 10k-file project,
- ``POST /v1/uploads`` of 1,000 digests (500 present, 500 new).

Each level gets a fresh 10k-file project, so the figures differ only by the size
of the tables around it.

    python bench/scale.py --levels 10000,200000,2000000 --runs 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.postgres import fresh_database  # noqa: E402
from tests.fixtures.server import ServerProcess  # noqa: E402
from tests.scale import synthetic  # noqa: E402
from tests.server.robot import Robot  # noqa: E402

from robosync.server.db import migrate  # noqa: E402
from robosync.server.db.engine import Database  # noqa: E402

PROJECTS = 2000
USERS = 200
BLOBS_PER_FILE = 0.75
PROJECT_FILES = 10_000
OPERATIONS = [
    "commit 100-line delta",
    "commit 10k-line delta",
    "manifest 10k files",
    "POST /v1/uploads 1000 digests",
]


def _timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


class BenchProject:
    """A 10k-file project and the content each of its paths has at the head."""

    def __init__(self, robot: Robot, blobs: int, rng: random.Random) -> None:
        self.robot = robot
        self.blobs = blobs
        self.rng = rng
        self.id = robot.new_project("scale")
        self.head = 0
        self.live: dict[str, int] = {}  # path -> blob number
        self._names = itertools.count()
        self.commit([self._put(self._new_path()) for _ in range(PROJECT_FILES)])

    def _new_path(self) -> str:
        n = next(self._names)
        return f"robot-{n % 7}/2026-11-{1 + n % 28:02d}/img-{n:07d}.jpg"

    def _put(self, path: str) -> dict[str, Any]:
        number = self.rng.randrange(self.blobs)
        while number == self.live.get(path):
            number = self.rng.randrange(self.blobs)
        self.live[path] = number
        b = synthetic.blob(number)
        return {"op": "put", "path": path, "digest": b.digest, "size": b.size}

    def _delete(self, path: str) -> dict[str, Any]:
        del self.live[path]
        return {"op": "delete", "path": path}

    def commit(self, lines: list[dict[str, Any]]) -> None:
        """Commit ``lines`` on the head; they must be accepted."""
        r = self.robot.commit(self.id, self.head, lines)
        assert r.status_code == 201, r.text
        self.head = int(r.json()["version"])

    def delta(self, size: int) -> list[dict[str, Any]]:
        """``size`` lines: half modify, a quarter delete, a quarter add (count stays)."""
        paths = self.rng.sample(sorted(self.live), size * 3 // 4)
        lines = [self._put(p) for p in paths[: size // 2]]
        lines += [self._delete(p) for p in paths[size // 2 :]]
        lines += [self._put(self._new_path()) for _ in range(size - len(lines))]
        return lines

    def read_manifest(self) -> None:
        """Stream and parse the head manifest; it must list every live path."""
        count = 0
        with self.robot.http.stream("GET", f"/v1/projects/{self.id}/manifest") as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line:
                    json.loads(line)
                    count += 1
        assert count == len(self.live), (count, len(self.live))


def _upload_items(blobs: int, rng: random.Random, fresh: itertools.count[int]) -> list[Any]:
    present = [synthetic.blob(n) for n in rng.sample(range(blobs), 500)]
    new = [synthetic.blob(10**12 + next(fresh)) for _ in range(500)]
    return [{"digest": b.digest, "size": b.size, "blocks": [b.block]} for b in present + new]


def _plan_uploads(robot: Robot, items: list[Any]) -> None:
    r = robot.http.post("/v1/uploads", json={"items": items})
    assert r.status_code == 200, r.text
    statuses = [i["status"] for i in r.json()["items"]]
    assert statuses.count("present") == 500, statuses.count("present")


def _measure(robot: Robot, blobs: int, runs: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    project = BenchProject(robot, blobs, rng)
    fresh = itertools.count(seed * 1_000_000)
    times: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    for _ in range(runs):
        small, big = project.delta(100), project.delta(10_000)
        times["commit 100-line delta"].append(_timed(partial(project.commit, small)))
        times["commit 10k-line delta"].append(_timed(partial(project.commit, big)))
        times["manifest 10k files"].append(_timed(project.read_manifest))
        items = _upload_items(blobs, rng, fresh)
        times["POST /v1/uploads 1000 digests"].append(_timed(partial(_plan_uploads, robot, items)))
    return times


def _grow(url: str, files_from: int, files_to: int) -> float:
    """Fill ``files`` (and blobs in proportion) up to ``files_to`` rows; seconds taken."""
    start = time.perf_counter()
    with psycopg.connect(synthetic.libpq_url(url)) as conn:
        if files_from == 0:
            synthetic.fill_accounts(conn, USERS, PROJECTS)
        blobs_to = int(files_to * BLOBS_PER_FILE)
        synthetic.fill_blobs(conn, int(files_from * BLOBS_PER_FILE), blobs_to)
        synthetic.fill_files(conn, files_from, files_to, PROJECTS, blobs_to)
        synthetic.vacuum_analyze(conn)
    return time.perf_counter() - start


def _table(levels: list[int], results: dict[int, dict[str, list[float]]]) -> str:
    head = "| operation | files rows | blobs rows | min s | median s | max s |"
    lines = [head, "|---|---|---|---|---|---|"]
    for op in OPERATIONS:
        for level in levels:
            v = results[level][op]
            blobs = int(level * BLOBS_PER_FILE)
            lines.append(
                f"| {op} | {level:,} | {blobs:,} | {min(v):.3f} | "
                f"{statistics.median(v):.3f} | {max(v):.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Fill, measure at each level, print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="10000,200000,2000000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    levels = sorted(int(x) for x in args.levels.split(","))
    results: dict[int, dict[str, list[float]]] = {}
    with fresh_database("robosync_scale") as url, tempfile.TemporaryDirectory() as tmp:
        db = Database(url)
        migrate.upgrade(db.engine)
        db.dispose()
        env = {
            "ROBOSYNC_DATABASE_URL": url,
            "ROBOSYNC_RATE_LIMIT": "",
            "ROBOSYNC_MAX_INFLIGHT_UPLOADS": "0",
        }
        filled = 0
        for i, level in enumerate(levels):
            seconds = _grow(url, filled, level)
            filled = level
            print(f"filled files to {level:,} rows in {seconds:.1f} s", file=sys.stderr)
            server = ServerProcess(Path(tmp) / f"server-{level}", env).start()
            robot = Robot(server.url, server.make_token("bench", f"robot-{level}"))
            with psycopg.connect(synthetic.libpq_url(url)) as conn:
                synthetic.possess_all(conn, "bench")
            try:
                results[level] = _measure(robot, int(level * BLOBS_PER_FILE), args.runs, i + 1)
            finally:
                robot.close()
                server.stop()
    print()
    print(_table(levels, results))
    print(f"\n{args.runs} runs per level; {PROJECTS:,} projects; PostgreSQL + local blob store.")


if __name__ == "__main__":
    main()
