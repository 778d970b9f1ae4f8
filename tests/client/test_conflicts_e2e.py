"""Conflicts no person has to resolve: file against folder, case twins, long names.

Each robot works through the Python API against a real server; every image
any robot pushed must reach every clone, and every clone must succeed.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from robosync.client import PullResult, PushResult
from tests.client.conftest import Robot, folder_digests, project_name, sha

Fleet = Callable[[str], Robot]


def _two_robots(fleet: Fleet) -> tuple[str, Robot, Robot]:
    name = project_name()
    r1, r2 = fleet("robot1"), fleet("robot2")
    with r1.init(name) as p1:
        p1.push()
    r2.clone(name).close()
    return name, r1, r2


def _outcomes(result: PushResult | PullResult) -> list[str]:
    return [n.outcome for n in result.merged if n.outcome in ("kept-both", "ours", "theirs")]


def _write(robot: Robot, rel: str, data: bytes) -> None:
    dest = robot.root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


def _clone_has_every_image(fleet: Fleet, name: str, *images: bytes) -> dict[str, str]:
    """Clone into a new robot; its files, after checking each image is among them."""
    with fleet("robot3").clone(name) as p3:
        assert p3.status(remote=True).server_moved is False
    got = folder_digests(fleet("robot3").root)
    assert sorted(got.values()) == sorted(sha(i) for i in images)
    return got


@pytest.mark.parametrize("file_first", [True, False])
def test_file_against_folder_keeps_the_folder_and_both_images(fleet: Fleet, file_first: bool):
    name, r1, r2 = _two_robots(fleet)
    as_file, in_folder = os.urandom(3000), os.urandom(3001)
    _write(r1, "cam0", as_file)
    _write(r2, "cam0/x.jpg", in_folder)
    first, second = (r1, r2) if file_first else (r2, r1)
    with first.open() as p:
        assert p.push().committed
    with second.open() as p:
        pushed = p.push()
    assert pushed.committed
    assert [n.outcome for n in pushed.merged if n.path == "cam0"] == ["kept-both"]
    got = _clone_has_every_image(fleet, name, as_file, in_folder)
    assert got["cam0/x.jpg"] == sha(in_folder)
    (copy,) = [p for p in got if p.startswith("cam0.conflict-")]
    assert got[copy] == sha(as_file)
    for robot in (r1, r2):  # both folders end up as the server's version
        with robot.open() as p:
            p.pull()
        assert folder_digests(robot.root) == got


@pytest.mark.parametrize("one_robot", [False, True], ids=["two-robots", "one-robot"])
def test_case_twins_both_reach_the_server(fleet: Fleet, one_robot: bool):
    name, r1, r2 = _two_robots(fleet)
    upper, lower = os.urandom(2000), os.urandom(2001)
    second = r1 if one_robot else r2
    _write(r1, "IMG.jpg", upper)
    _write(second, "img.jpg", lower)
    if not one_robot:
        with r1.open() as p:
            p.push()
    with second.open() as p:
        pushed = p.push()
    assert pushed.committed and _outcomes(pushed) == ["kept-both"]
    got = _clone_has_every_image(fleet, name, upper, lower)
    assert got["IMG.jpg"] == sha(upper)
    assert len({p.casefold() for p in got}) == len(got)


@pytest.mark.parametrize("local_is_file", [True, False])
def test_pull_resolves_local_state_that_cannot_be_pushed(fleet: Fleet, local_is_file: bool):
    """A robot with a file ``cam0`` while the server has a folder ``cam0``, or the reverse."""
    name, r1, r2 = _two_robots(fleet)
    mine, theirs = os.urandom(3000), os.urandom(3001)
    _write(r1, "cam0" if local_is_file else "cam0/a.jpg", mine)
    _write(r2, "cam0/x.jpg" if local_is_file else "cam0", theirs)
    with r2.open() as p:
        p.push()
    with r1.open() as p:
        pulled = p.pull()
        assert _outcomes(pulled) == ["kept-both"]
        again = p.pull()  # a later pull is not wedged
        assert again.version == pulled.version
        assert p.push().committed
    with r2.open() as p:
        p.pull()
    got = _clone_has_every_image(fleet, name, mine, theirs)
    assert folder_digests(r1.root) == got == folder_digests(r2.root)


@pytest.mark.parametrize(
    "rel",
    [
        "/".join(["d" * 200] * 4) + "/" + "f" * 206 + ".jpg",  # a 1014-byte path
        "cam0/" + "é" * 120 + ".jpg",  # a 244-byte file name
    ],
    ids=["1014-byte-path", "244-byte-name"],
)
def test_a_long_path_changed_by_two_robots_keeps_both_versions(fleet: Fleet, rel: str):
    assert len(rel.encode()) in (1014, 249)
    name, r1, r2 = _two_robots(fleet)
    base, one, two = os.urandom(1000), os.urandom(1001), os.urandom(1002)
    _write(r1, rel, base)
    with r1.open() as p:
        p.push()
    with r2.open() as p:
        p.pull()
    _write(r1, rel, one)
    _write(r2, rel, two)
    with r1.open() as p:
        p.push()
    with r2.open() as p:
        pushed = p.push()
        assert pushed.committed and not pushed.invalid
        assert _outcomes(pushed) == ["kept-both"]
    got = _clone_has_every_image(fleet, name, one, two)
    assert got[rel] == sha(one)
    for robot in (r1, r2):
        with robot.open() as p:
            p.pull()
            assert not p.status(remote=True).invalid
        assert folder_digests(robot.root) == got
