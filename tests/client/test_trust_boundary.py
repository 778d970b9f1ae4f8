"""The client's trust boundary: a tampering server never gets a write or delete outside the folder.

The server is real; what the client receives is tampered with two ways: a
proxy in front of the API rewrites answers, and rows are planted directly in
the server's SQLite database. One embedded server serves the module.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from robosync.client import Project
from robosync.client.trust import UntrustedAnswer
from tests.client.conftest import Robot, folder_digests, project_name, sha
from tests.client.tampering_proxy import TamperingProxy, rewrite_ndjson_paths
from tests.fixtures.server import ServerProcess


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One embedded server (SQLite, so rows can be planted) for the module."""
    proc = ServerProcess(tmp_path_factory.mktemp("trust-server"), {}).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def tamper(embedded: ServerProcess) -> Iterator[TamperingProxy]:
    """A proxy in front of the API whose ``rewrite`` each test sets."""
    proxy = TamperingProxy("127.0.0.1", embedded.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def robots(
    embedded: ServerProcess, tamper: TamperingProxy, tmp_path: Path
) -> Iterator[Callable[[str, bool], Robot]]:
    """Robots of one user: ``make(name, through_proxy)``."""
    token = embedded.make_token(f"user-{uuid.uuid4().hex[:8]}", "fleet")

    def make(name: str, through_proxy: bool = False) -> Robot:
        url = tamper.url if through_proxy else embedded.url
        return Robot(name, url, token, tmp_path / name)

    yield make
    tamper.rewrite = lambda method, path, body: body


def files_under(folder: Path) -> set[str]:
    """Every file (and link) under ``folder``, relative."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}


BAD_PATHS = {
    "parent": "../escape.png",
    "deep-parent": "cam/../../escape.png",
    "absolute": "{tmp}/escape.png",
    "backslash": "..\\escape.png",
    "control": "a\x01.png",
    "reserved": ".robosync/config.json",
    "not-nfc": "cafe\u0301.png",
    "too-long": "x" * 1025,
    "temp-name": "cam/.robosync-tmp-planted",
}


@pytest.mark.parametrize("bad", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_clone_refuses_a_manifest_path_breaking_the_rules_and_writes_nothing(
    robots: Callable[[str, bool], Robot], tamper: TamperingProxy, tmp_path: Path, bad: str
):
    bad = bad.format(tmp=tmp_path)
    name = project_name()
    r1, r2 = robots("r1", False), robots("r2", True)
    with r1.init(name) as p1:
        p1.save_image("a.png", b"a" * 3000)
        p1.save_image("cam/b.png", b"b" * 3000)
        p1.push()
    tamper.rewrite = rewrite_ndjson_paths("/manifest", {"a.png": bad})
    before = files_under(tmp_path)
    out = r2.cli("clone", name, str(r2.root), check=False)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid path" in lines[0] and repr(bad) in lines[0]
    created = files_under(tmp_path) - before
    assert {p for p in created if not p.startswith("r2/project/.robosync/")} == set()


def test_pull_refuses_changes_with_a_bad_put_or_delete_and_touches_nothing(
    robots: Callable[[str, bool], Robot], tamper: TamperingProxy, tmp_path: Path
):
    name = project_name()
    r1, r2 = robots("r1", False), robots("r2", True)
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"outside the project")
    with r1.init(name) as p1:
        p1.save_image("old.png", b"o" * 3000)
        p1.push()
    with r2.clone(name) as p2, r1.open() as p1:
        p1.save_image("new.png", b"n" * 3000)
        p1.rm(["old.png"])
        p1.push()
        before = folder_digests(r2.root)
        for rewrite in ({"new.png": "../escape.png"}, {"old.png": "../victim.png"}):
            tamper.rewrite = rewrite_ndjson_paths("/changes", rewrite)
            with pytest.raises(UntrustedAnswer, match="invalid path '../"):
                p2.pull()
            assert not (tmp_path / "escape.png").exists()
            assert victim.read_bytes() == b"outside the project"
            assert folder_digests(r2.root) == before
            assert p2.index.base_version == 1
        tamper.rewrite = lambda method, path, body: body
        p2.pull()
    assert folder_digests(r2.root) == {"new.png": sha(b"n" * 3000)}


def test_a_download_answer_for_other_digests_fails_those_files(
    robots: Callable[[str, bool], Robot], tamper: TamperingProxy
):
    name = project_name()
    r1, r2 = robots("r1", False), robots("r2", True)
    with r1.init(name) as p1:
        p1.save_image("a.png", b"a" * 3000)
        p1.save_image("b.png", b"b" * 3000)
        p1.push()

    def swap_digests(method: str, path: str, body: bytes) -> bytes:
        if not path.endswith("/downloads"):
            return body
        answer = json.loads(body)
        for item in answer["items"]:
            item["digest"] = "0" * 64
        return json.dumps(answer).encode()

    tamper.rewrite = swap_digests
    with pytest.raises(UntrustedAnswer, match="not asked for"):
        r2.clone(name)
    assert [p for p in files_under(r2.root) if not p.startswith(".robosync/")] == []


def _server_db(server: ServerProcess) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "robosync.sqlite", timeout=30)


def test_rows_planted_in_the_database_never_reach_outside_the_folder(
    robots: Callable[[str, bool], Robot], embedded: ServerProcess, tmp_path: Path
):
    name = project_name()
    r1, r2, r3 = robots("r1", False), robots("r2", False), robots("r3", False)
    with r1.init(name) as p1:
        p1.save_image("a.png", b"a" * 3000)
        p1.push()
        project_id = p1.config.project_id
    with r2.clone(name) as p2:
        config_before = (r2.root / ".robosync/config.json").read_bytes()
        db = _server_db(embedded)
        with db:
            # A new version whose only change is a put of the client's own config.
            digest, size = db.execute(
                "SELECT digest, size FROM files WHERE project_id = ? AND path = 'a.png'",
                (project_id,),
            ).fetchone()
            db.execute(
                "INSERT INTO files (project_id, path, path_key, digest, size, added_in) "
                "VALUES (?, '.robosync/config.json', '.robosync/config.json', ?, ?, 2)",
                (project_id, digest, size),
            )
            db.execute("UPDATE projects SET head_version = 2 WHERE id = ?", (project_id,))
        with pytest.raises(UntrustedAnswer, match=r"\.robosync/config\.json"):
            p2.pull()
        assert (r2.root / ".robosync/config.json").read_bytes() == config_before
        assert p2.index.base_version == 1
    with db:
        db.execute(
            "UPDATE files SET path = '../planted.png', path_key = '../planted.png' "
            "WHERE project_id = ? AND path = 'a.png'",
            (project_id,),
        )
    db.close()
    with pytest.raises(UntrustedAnswer, match=r"'\.\./planted\.png'"):
        r3.clone(name)
    assert not (tmp_path / "r3" / "planted.png").exists()
    assert not (tmp_path / "planted.png").exists()


# --- symlinked folders (issue 15.1) ---------------------------------------------


def _symlink_cam0(robot: Robot, outside: Path) -> None:
    """Move ``cam0`` out of the folder and leave a symlink to it in its place."""
    os.rename(robot.root / "cam0", outside)
    os.symlink(outside, robot.root / "cam0")


def _clone_with_symlinked_cam0(
    robots: Callable[[str, bool], Robot], outside: Path
) -> tuple[str, Robot, Robot]:
    """Robot 1 pushes ``cam0/a.jpg``; robot 2 clones, then moves ``cam0`` to ``outside``."""
    name = project_name()
    r1, r2 = robots("r1", False), robots("r2", False)
    with r1.init(name) as p1:
        p1.save_image("cam0/a.jpg", b"a" * 3000)
        p1.push()
    with r2.clone(name):
        pass
    _symlink_cam0(r2, outside)
    return name, r1, r2


def test_pull_never_writes_through_a_symlinked_folder_and_push_deletes_nothing(
    robots: Callable[[str, bool], Robot], tmp_path: Path
):
    outside = tmp_path / "usb"
    name, r1, r2 = _clone_with_symlinked_cam0(robots, outside)
    with r1.open() as p1:
        p1.save_image("cam0/x.jpg", b"x" * 3000)
        p1.save_image("top.jpg", b"t" * 3000)
        p1.push()
    out = r2.cli("pull", check=False)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cam0/x.jpg" in lines[0] and "symbolic link" in lines[0]
    assert sorted(os.listdir(outside)) == ["a.jpg"]
    assert (r2.root / "top.jpg").read_bytes() == b"t" * 3000
    with r2.open() as p2:
        assert p2.status().deleted == []
        pushed = p2.push()
        assert not pushed.committed and pushed.deleted == 0
    r3 = robots("r3", False)
    with r3.clone(name):
        assert set(folder_digests(r3.root)) == {"cam0/a.jpg", "cam0/x.jpg", "top.jpg"}


def test_a_remote_delete_behind_a_symlink_leaves_the_link_target_alone(
    robots: Callable[[str, bool], Robot], tmp_path: Path
):
    outside = tmp_path / "usb"
    _, r1, r2 = _clone_with_symlinked_cam0(robots, outside)
    with r1.open() as p1:
        p1.rm(["cam0/a.jpg"])
        p1.push()
    with r2.open() as p2:
        pulled = p2.pull()
        assert [n.outcome for n in pulled.merged if n.path == "cam0/a.jpg"] == ["refused"]
        assert (outside / "a.jpg").read_bytes() == b"a" * 3000
        assert p2.status().deleted == []


def test_save_image_refuses_a_symlinked_folder(robots: Callable[[str, bool], Robot], tmp_path):
    from robosync.client.confined import SymlinkInPath

    r1 = robots("r1", False)
    outside = tmp_path / "usb"
    with r1.init(project_name()) as p1:
        p1.save_image("cam0/a.jpg", b"a")
        _symlink_cam0(r1, outside)
        with pytest.raises(SymlinkInPath, match="cam0 is a symbolic link"):
            p1.save_image("cam0/b.jpg", b"b")
    assert sorted(os.listdir(outside)) == ["a.jpg"]


# --- evict (issue 15.4) ---------------------------------------------------------


def test_evict_refuses_a_file_whose_content_is_not_that_paths_committed_content(
    robots: Callable[[str, bool], Robot],
):
    r1 = robots("r1", False)
    r1.root.mkdir(parents=True)
    (r1.root / "a.jpg").write_bytes(b"a" * 3000)
    (r1.root / "b.jpg").write_bytes(b"b" * 3000)
    r1.cli("init", project_name())
    r1.cli("push")
    (r1.root / "a.jpg").write_bytes((r1.root / "b.jpg").read_bytes())  # cp b.jpg a.jpg
    out = r1.cli("evict", "a.jpg", check=False)
    assert out.returncode == 1
    assert "a.jpg" in out.stderr and "push first" in out.stderr
    assert (r1.root / "a.jpg").read_bytes() == b"b" * 3000
    assert "pushed v2: +0 ~1 -0" in r1.cli("push").stdout
    r1.cli("evict", "a.jpg")
    assert not (r1.root / "a.jpg").exists()
    assert "nothing to push" in r1.cli("push").stdout


def test_push_recovers_a_change_evicted_by_an_older_client(robots: Callable[[str, bool], Robot]):
    from robosync.client.index import EVICTED

    r1, r2 = robots("r1", False), robots("r2", False)
    name = project_name()
    with r1.init(name) as p1:
        p1.save_image("a.jpg", b"a" * 3000)
        p1.save_image("b.jpg", b"b" * 3000)
        p1.push()
        # What `cp b.jpg a.jpg; robosync evict a.jpg` left behind before the fix.
        b = p1.index.file("b.jpg")
        assert b is not None
        os.unlink(r1.root / "a.jpg")
        with p1.index.transaction():
            p1.index.set_remote_only("a.jpg", b.entry, EVICTED)
        pushed = p1.push()
        assert pushed.committed and pushed.modified == 1
    with r2.clone(name):
        assert (r2.root / "a.jpg").read_bytes() == b"b" * 3000


def test_project_open_is_unaffected_by_a_symlinked_root(robots: Callable[[str, bool], Robot]):
    r1 = robots("r1", False)
    with r1.init(project_name()) as p1:
        p1.save_image("a.jpg", b"a")
        p1.push()
    alias = r1.home / "alias"
    os.symlink(r1.root, alias)
    with Project.open(alias, settings=r1.settings) as p:
        p.save_image("b.jpg", b"b")
        assert p.push().added == 1
