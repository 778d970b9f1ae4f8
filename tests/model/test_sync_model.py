"""A model-based test of the whole sync protocol: 3 robots, one real server, random steps.

Hypothesis drives robots (the Python API of ``robosync.client``) with adds,
modifications, deletions, renames, files where another robot made a folder,
case twins, pushes, pulls and clones. After every step it checks what a fleet
depends on:

* every version on the server can be checked out: no path is a file and a
  folder, no two paths differ only in case (so it fits a case-insensitive
  file system too), and clones of versions reproduce their manifests;
* every byte any robot pushed is in some version;
* a file a robot deleted after seeing its last content stays deleted;
* nothing outside a robot's folder changes.

The path pool is tiny on purpose, so robots collide all the time. The seed is
fixed (``derandomize``); ``ROBOSYNC_MODEL_EXAMPLES`` / ``ROBOSYNC_MODEL_STEPS``
make a longer run and ``ROBOSYNC_MODEL_RANDOM=1`` a new seed
(``scripts/model-test``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from robosync.client import Project
from robosync.client.api import Api
from robosync.client.case_tree import CaseTree
from robosync.client.index import DIRNAME
from robosync.digest import digest_file
from tests.client.conftest import Robot
from tests.fixtures.server import ServerProcess

EXAMPLES = int(os.environ.get("ROBOSYNC_MODEL_EXAMPLES", "12"))
STEPS = int(os.environ.get("ROBOSYNC_MODEL_STEPS", "30"))
# Any value: a new random seed per run instead of the fixed one (for long runs).
RANDOM = bool(os.environ.get("ROBOSYNC_MODEL_RANDOM"))

POOL = ["a.jpg", "A.jpg", "b.jpg", "cam0", "Cam0", "cam0/x.jpg", "CAM0/y.jpg", "cam0/s/z.jpg"]
ROBOTS = 3

robot_ids = st.integers(0, ROBOTS - 1)
pool_paths = st.sampled_from(POOL)


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """One embedded server (SQLite, local blob store) for every example, and a token on it."""
    proc = ServerProcess(tmp_path_factory.mktemp("model-server")).start()
    try:
        yield proc, proc.make_token("model", "fleet")
    finally:
        proc.stop()


def _can_create(root: Path, rel: str) -> bool:
    """Whether a file ``rel`` can be created in ``root`` on a case-sensitive file system."""
    target = root / rel
    if target.exists() or target.is_symlink():
        return False
    parent = target.parent
    while parent != root:
        if parent.exists() and not parent.is_dir():
            return False
        parent = parent.parent
    return True


def _local_files(root: Path) -> dict[str, str]:
    """Every file of a project folder (``.robosync/`` excluded) → its robosync digest."""
    out: dict[str, str] = {}
    for p in root.rglob("*") if root.exists() else ():
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] != DIRNAME:
            out[rel.as_posix()] = digest_file(p).digest
    return out


class SyncModel(RuleBasedStateMachine):
    """Three robots of one project, each a folder, all against one server."""

    server: ServerProcess
    token: str
    workdir: Path

    def __init__(self) -> None:
        super().__init__()
        self.robots: list[Robot] = []
        self.project = ""
        self.manifests: dict[int, dict[str, str]] = {}  # versions are immutable
        self.checked = 0  # versions below this one passed the checks
        self.pushed: set[str] = set()  # digests of every file a push committed
        self.in_versions: set[str] = set()  # digests in any version checked so far
        self.deleted: dict[str, set[str]] = {}  # path -> digests it must not have again
        self.outside = b""
        self.space = Path()
        self.api: Api | None = None
        self.project_id = 0
        self.counter = 0

    # --- setup ------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        """A fresh project, three robots (one inits, two clone) and a file beside them."""
        self.space = self.workdir / uuid.uuid4().hex[:8]
        self.space.mkdir()
        self.outside = os.urandom(64)
        (self.space / "outside.bin").write_bytes(self.outside)
        self.project = f"model-{uuid.uuid4().hex[:8]}"
        token = self.token
        self.api = Api(self.server.url, token)
        self.robots = [
            Robot(f"robot{i}", self.server.url, token, self.space / f"robot{i}")
            for i in range(ROBOTS)
        ]
        with self.robots[0].init(self.project) as p:
            p.push()
            self.project_id = p.config.project_id
        for robot in self.robots[1:]:
            robot.clone(self.project).close()

    def teardown(self) -> None:
        if self.api is not None:
            self.api.close()
        if self.space != Path() and self.space.exists():
            shutil.rmtree(self.space)

    # --- local edits ------------------------------------------------------------

    def _fresh_bytes(self) -> bytes:
        self.counter += 1
        return f"{self.project}-{self.counter}-".encode() + os.urandom(24)

    def _files(self, i: int) -> list[str]:
        return sorted(_local_files(self.robots[i].root))

    @rule(i=robot_ids, rel=pool_paths)
    def add(self, i: int, rel: str) -> None:
        """Write a new file (if the folder's files allow it)."""
        root = self.robots[i].root
        if _can_create(root, rel):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(self._fresh_bytes())

    @rule(i=robot_ids, pick=st.integers(0, 100))
    def modify(self, i: int, pick: int) -> None:
        """Overwrite one of the robot's files with new bytes."""
        files = self._files(i)
        if files:
            (self.robots[i].root / files[pick % len(files)]).write_bytes(self._fresh_bytes())

    @rule(i=robot_ids, pick=st.integers(0, 100))
    def delete(self, i: int, pick: int) -> None:
        """Delete one of the robot's files."""
        files = self._files(i)
        if files:
            (self.robots[i].root / files[pick % len(files)]).unlink()

    @rule(i=robot_ids, pick=st.integers(0, 100), rel=pool_paths)
    def rename(self, i: int, pick: int, rel: str) -> None:
        """Move one of the robot's files to another pool path."""
        root = self.robots[i].root
        files = self._files(i)
        if files and _can_create(root, rel):
            source = root / files[pick % len(files)]
            # Moving bytes onto a path deleted earlier is a deliberate new add.
            self.deleted.get(rel, set()).discard(digest_file(source).digest)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, root / rel)

    @rule(i=robot_ids, j=robot_ids, pick=st.integers(0, 100))
    def file_where_another_made_a_folder(self, i: int, j: int, pick: int) -> None:
        """Create a file named like a folder of another robot's folder."""
        folders = sorted(
            str(p.relative_to(self.robots[j].root))
            for p in self.robots[j].root.rglob("*")
            if p.is_dir() and DIRNAME not in p.relative_to(self.robots[j].root).parts
        )
        if i != j and folders:
            self.add(i, folders[pick % len(folders)])

    @rule(i=robot_ids, j=robot_ids, pick=st.integers(0, 100))
    def case_twin(self, i: int, j: int, pick: int) -> None:
        """Create the case twin of one of another robot's files."""
        files = self._files(j)
        if i != j and files:
            self.add(i, files[pick % len(files)].swapcase())

    # --- sync -------------------------------------------------------------------

    def _open(self, i: int) -> Project:
        return self.robots[i].open()

    @rule(i=robot_ids)
    def push(self, i: int) -> None:
        """Push; every file the robot had is then committed somewhere."""
        with self._open(i) as p:
            before = p.index.base_manifest()
            on_disk = _local_files(self.robots[i].root)
            p.push()
            self.pushed.update(on_disk.values())
            for path, entry in before.items():
                if path not in on_disk and p.index.base_entry(path) is None:
                    self.deleted.setdefault(path, set()).add(entry.digest)

    @rule(i=robot_ids)
    def pull(self, i: int) -> None:
        """Pull: never fails, whatever the folder holds."""
        with self._open(i) as p:
            p.pull()

    @rule(pick=st.integers(0, 1000))
    def clone(self, pick: int) -> None:
        """Clone a version into a new folder: it holds exactly that version's files."""
        head = self._head()
        version = pick % (head + 1)
        home = self.space / f"clone-{uuid.uuid4().hex[:6]}"
        robot = Robot("cloner", self.robots[0].server, self.robots[0].token, home)
        robot.clone(self.project, version=version).close()
        assert _local_files(robot.root) == self._manifest(version)
        shutil.rmtree(home)

    # --- server views -----------------------------------------------------------

    def _head(self) -> int:
        assert self.api is not None
        return self.api.project(self.project_id).head_version

    def _manifest(self, version: int) -> dict[str, str]:
        if version not in self.manifests:
            assert self.api is not None
            with self.api.manifest(self.project_id, version) as (_, entries):
                self.manifests[version] = {e.path: e.digest for e in entries}
        return self.manifests[version]

    # --- invariants ---------------------------------------------------------------

    @invariant()
    def protocol_holds(self) -> None:
        """Every invariant of the module docstring, after every step."""
        if not self.robots:
            return
        head = self._head()
        self._every_version_can_be_checked_out(head)
        self._every_pushed_byte_is_in_some_version()
        self._a_seen_and_deleted_file_stays_deleted(head)
        self._nothing_outside_the_robot_folders_changes()

    def _every_version_can_be_checked_out(self, head: int) -> None:
        for version in range(self.checked, head + 1):
            manifest = self._manifest(version)
            tree = CaseTree(manifest)
            clashes = [c for c in map(tree.clash, manifest) if c is not None]
            assert not clashes, f"version {version} cannot be checked out: {clashes[0]}"
            self.in_versions.update(manifest.values())
        self.checked = head + 1

    def _every_pushed_byte_is_in_some_version(self) -> None:
        missing = self.pushed - self.in_versions
        assert not missing, f"{len(missing)} pushed file(s) in no version"

    def _a_seen_and_deleted_file_stays_deleted(self, head: int) -> None:
        back = {p: d for p, d in self._manifest(head).items() if d in self.deleted.get(p, ())}
        assert not back, f"deleted files came back: {back}"

    def _nothing_outside_the_robot_folders_changes(self) -> None:
        assert (self.space / "outside.bin").read_bytes() == self.outside
        names = {p.name for p in self.space.iterdir()}
        assert names == {"outside.bin", *(f"robot{i}" for i in range(ROBOTS))}, names
        for robot in self.robots:
            assert {p.name for p in robot.home.iterdir()} <= {"project", "config"}


@pytest.mark.timeout(1800)  # a safety net for long runs; the default run takes 1-2 minutes
def test_three_robots_keep_every_version_clonable_and_every_image(
    model_server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    """Run the state machine with a fixed seed against one server process."""
    SyncModel.server, SyncModel.token = model_server
    SyncModel.workdir = tmp_path
    run_state_machine_as_test(
        SyncModel,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            derandomize=not RANDOM,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
