"""Push, pull, clone, merge, evict, rm and restore against real server processes."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable

import pytest

from robosync.client import Project, PushResult
from robosync.client.lock import ProjectLocked
from robosync.errors import NotFound
from tests.client.conftest import Robot, folder_digests, project_name, sha

Fleet = Callable[[str], Robot]


def images(prefix: str, n: int, size: int = 4096) -> dict[str, bytes]:
    """``n`` random images named ``<prefix>i.png``."""
    return {f"{prefix}{i}.png": os.urandom(size + i) for i in range(n)}


def save(p: Project, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p.save_image(rel, data)


def test_reference_case_third_robot_gets_exactly_the_merge(fleet: Fleet):
    name = project_name()
    r1, r2, r3 = fleet("robot1"), fleet("robot2"), fleet("robot3")
    start = {"A.png": os.urandom(3000), "B.png": os.urandom(3001), "C.png": os.urandom(3002)}
    d, e = os.urandom(5000), os.urandom(5001)
    with r1.init(name) as p1:
        save(p1, start)
        p1.push(message="start")
    with r2.clone(name) as p2, r1.open() as p1:
        p1.save_image("D.png", d)
        os.unlink(r1.root / "C.png")
        p2.save_image("E.png", e)
        first = p1.push()
        second = p2.push()
    assert first.committed and first.commit_attempts == 1
    assert second.committed and second.commit_attempts == 2
    assert {n.path: n.outcome for n in second.merged} == {
        "C.png": "remote",
        "D.png": "remote",
        "E.png": "local",
    }
    # nothing is uploaded twice: robot 2 sent only E
    assert (second.uploaded_blobs, second.bytes_sent) == (1, len(e))
    with r3.clone(name) as p3:
        assert p3.index.base_version == second.version
    expected = {"A.png": start["A.png"], "B.png": start["B.png"], "D.png": d, "E.png": e}
    assert folder_digests(r3.root) == {k: sha(v) for k, v in expected.items()}


def test_eight_robots_pushing_at_once_lose_no_image(fleet: Fleet):
    name = project_name()
    robots = [fleet(f"r{i}") for i in range(8)]
    projects = [robots[0].init(name)] + [r.clone(name) for r in robots[1:]]
    own = {r.name: images(f"{r.name}/img", 3, 2000) for r in robots}
    shared = {r.name: os.urandom(2500) for r in robots}
    for r, p in zip(robots, projects, strict=True):
        save(p, own[r.name])
        p.save_image("shared.png", shared[r.name])
    barrier = threading.Barrier(len(robots))
    results: dict[str, PushResult] = {}
    errors: list[BaseException] = []

    def push(r: Robot, p: Project) -> None:
        try:
            barrier.wait()
            results[r.name] = p.push(jobs=4)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=push, args=rp) for rp in zip(robots, projects, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    for p in projects:
        p.close()
    assert not errors, errors
    checker = fleet("checker")
    with checker.clone(name) as pc:
        head = folder_digests(checker.root)
        assert pc.index.base_version == len(robots)  # one version per push
    for r in robots:
        for rel, data in own[r.name].items():
            assert head[rel] == sha(data)
    # every robot's version of shared.png survives: one at the path, 7 as conflict copies
    shared_paths = [p for p in head if p.startswith("shared")]
    assert len(shared_paths) == len(robots)
    assert sorted(head[p] for p in shared_paths) == sorted(sha(b) for b in shared.values())
    assert len(head) == len(robots) * 4
    # no blob was uploaded twice across all the retries and merges
    uploaded = sum(r.uploaded_blobs for r in results.values())
    assert uploaded == len(robots) * 4


def test_both_modified_keeps_both_and_pull_downloads(fleet: Fleet):
    name = project_name()
    r1, r2 = fleet("r1"), fleet("r2")
    with r1.init(name) as p1:
        p1.save_image("x.png", b"base")
        p1.push()
    with r2.clone(name) as p2, r1.open() as p1:
        p1.save_image("x.png", b"robot one")
        p1.push()
        p2.save_image("x.png", b"robot two")
        pulled = p2.pull()
        assert [(n.path, n.outcome) for n in pulled.merged] == [("x.png", "kept-both")]
        files = folder_digests(r2.root)
        (copy,) = [p for p in files if p != "x.png"]
        assert copy.startswith("x.conflict-r2-") and copy.endswith(".png")
        assert files == {"x.png": sha(b"robot one"), copy: sha(b"robot two")}
        assert p2.push().committed
        p1.pull()
        assert folder_digests(r1.root) == files


def test_delete_versus_modify_keeps_the_modified_bytes(fleet: Fleet):
    name = project_name()
    r1, r2 = fleet("r1"), fleet("r2")
    with r1.init(name) as p1:
        p1.save_image("x.png", b"base")
        p1.push()
    with r2.clone(name) as p2, r1.open() as p1:
        os.unlink(r1.root / "x.png")
        p1.push()
        p2.save_image("x.png", b"modified")
        result = p2.push()
        assert [(n.path, n.outcome) for n in result.merged] == [("x.png", "kept-modified")]
        p1.pull()
    assert folder_digests(r1.root) == {"x.png": sha(b"modified")}


def test_rm_propagates_and_restore_brings_back_an_old_version(fleet: Fleet):
    name = project_name()
    r1, r2 = fleet("r1"), fleet("r2")
    with r1.init(name) as p1:
        p1.save_image("a.png", b"v1 of a")
        p1.save_image("b.png", b"b")
        v1 = p1.push().version
        p1.save_image("a.png", b"v2 of a")
        p1.push()
        assert p1.rm(["b.png"]) == ["b.png"]
        p1.push()
    with r2.clone(name) as p2:
        assert folder_digests(r2.root) == {"a.png": sha(b"v2 of a")}
        p2.restore("a.png", v1)
        assert (r2.root / "a.png").read_bytes() == b"v1 of a"
        assert p2.status(remote=False).modified == ["a.png"]
        p2.push()
        with pytest.raises(NotFound, match="not in version"):
            p2.restore("nope.png", v1)
    with r1.open() as p1:
        p1.pull()
    assert (r1.root / "a.png").read_bytes() == b"v1 of a"


def test_evict_frees_only_uploaded_files_and_fetch_brings_them_back(fleet: Fleet):
    name = project_name()
    r1 = fleet("r1")
    with r1.init(name) as p1:
        p1.save_image("cam/a.png", b"a" * 5000)
        p1.push()
        p1.save_image("cam/new.png", b"not pushed yet")
        result = p1.evict()
        assert result.evicted == ["cam/a.png"] and result.bytes_freed == 5000
        assert result.kept == [("cam/new.png", "not on the server yet; push first")]
        assert not (r1.root / "cam/a.png").exists()
        status = p1.status()
        assert status.evicted == ["cam/a.png"] and status.deleted == []
        assert status.added == ["cam/new.png"]
        pushed = p1.push()
        assert (pushed.added, pushed.deleted) == (1, 0)
        p1.fetch(["cam/a.png"])
        assert (r1.root / "cam/a.png").read_bytes() == b"a" * 5000
        assert p1.status().evicted == []


def test_pull_copies_a_local_duplicate_instead_of_downloading(fleet: Fleet):
    name = project_name()
    r1, r2 = fleet("r1"), fleet("r2")
    data = os.urandom(10000)
    with r1.init(name) as p1:
        p1.save_image("one.png", data)
        p1.push()
    with r2.clone(name) as p2, r1.open() as p1:
        p1.save_image("copy/two.png", data)
        p1.push()
        pulled = p2.pull()
    assert (pulled.downloaded, pulled.copied) == (0, 1)
    assert (r2.root / "copy/two.png").read_bytes() == data


def test_second_command_in_same_folder_refuses_clearly(fleet: Fleet):
    r1 = fleet("r1")
    with (
        r1.init(project_name()) as p1,
        p1._locked(),
        pytest.raises(ProjectLocked, match="another robosync command is running"),
    ):
        p1.push()


def test_clone_of_an_old_version(fleet: Fleet):
    name = project_name()
    r1, r2 = fleet("r1"), fleet("r2")
    with r1.init(name) as p1:
        p1.save_image("a.png", b"old")
        v1 = p1.push().version
        p1.save_image("a.png", b"new")
        p1.save_image("b.png", b"b")
        p1.push()
    with r2.clone(name, version=v1) as p2:
        assert folder_digests(r2.root) == {"a.png": sha(b"old")}
        assert p2.status().server_moved


def test_an_evicted_file_changed_remotely_stays_evicted_after_pull(fleet: Fleet):
    name = project_name()
    r1, r2 = fleet("r1"), fleet("r2")
    with r1.init(name) as p1:
        p1.save_image("a.png", b"one")
        p1.push()
    with r2.clone(name) as p2, r1.open() as p1:
        assert p2.evict(["a.png"]).evicted == ["a.png"]
        p1.save_image("a.png", b"two")
        p1.push()
        assert p2.pull().downloaded == 0
        assert p2.status().evicted == ["a.png"]
        p2.fetch()
        assert (r2.root / "a.png").read_bytes() == b"two"


def test_empty_and_multi_block_files_round_trip(fleet: Fleet):
    name = project_name()
    r1, r2 = fleet("r1"), fleet("r2")
    big = os.urandom(2 * 8 * 1024 * 1024 + 123)
    with r1.init(name) as p1:
        p1.save_image("empty.png", b"")
        p1.save_image("big.bin", big)
        pushed = p1.push()
        assert pushed.parts_sent == 1 + 3
    with r2.clone(name):
        pass
    assert folder_digests(r2.root) == {"empty.png": sha(b""), "big.bin": sha(big)}


def test_save_image_writes_atomically_with_a_metadata_sidecar(fleet: Fleet, tmp_path):
    r1 = fleet("r1")
    src = tmp_path / "capture.png"
    src.write_bytes(b"from a file")
    with r1.init(project_name()) as p1:
        p1.save_image("cam/a.png", b"bytes", meta={"exposure_ms": 4})
        p1.save_image("cam/b.png", src)
        with open(src, "rb") as f:
            p1.save_image("cam/c.png", f)
        with pytest.raises(ValueError, match="contains '..'"):
            p1.save_image("../escape.png", b"x")
        assert p1.status(remote=False).added == [
            "cam/a.png",
            "cam/a.png.meta.json",
            "cam/b.png",
            "cam/c.png",
        ]
    assert json.loads((r1.root / "cam/a.png.meta.json").read_text()) == {"exposure_ms": 4}
    assert (r1.root / "cam/c.png").read_bytes() == b"from a file"
    assert not list(r1.root.rglob(".robosync-tmp-*"))
