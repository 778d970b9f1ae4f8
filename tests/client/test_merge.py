"""Three-way merge: DESIGN.md's table, one row per case."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from robosync.client.case_tree import CaseTree
from robosync.client.merge import Entry, conflict_path, merge
from robosync.paths import path_problem

A = Entry("a" * 64, 1)
A2 = Entry("b" * 64, 2)
A3 = Entry("c" * 64, 3)
WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
COPY = "img.conflict-r2-20250304T050607.png"
CAM = "cam0.conflict-r2-20250304T050607"


def run(base, local, remote, **kw):
    return merge(base, local, remote, robot="r2", now=WHEN, **kw)


@pytest.mark.parametrize(
    ("base", "local", "remote", "commit", "take_remote", "copies"),
    [
        # only local changed
        ({"img.png": A}, {"img.png": A2}, {}, {"img.png": A2}, {}, {}),
        ({"img.png": A}, {"img.png": None}, {}, {"img.png": None}, {}, {}),
        ({}, {"img.png": A}, {}, {"img.png": A}, {}, {}),
        # only remote changed
        ({"img.png": A}, {}, {"img.png": A2}, {}, {"img.png": A2}, {}),
        ({"img.png": A}, {}, {"img.png": None}, {}, {"img.png": None}, {}),
        # both made the same change
        ({"img.png": A}, {"img.png": A2}, {"img.png": A2}, {}, {}, {}),
        ({"img.png": A}, {"img.png": None}, {"img.png": None}, {}, {}, {}),
        ({}, {"img.png": A}, {"img.png": A}, {}, {}, {}),
        # both changed differently: keep both, remote keeps the path
        (
            {"img.png": A},
            {"img.png": A2},
            {"img.png": A3},
            {COPY: A2},
            {"img.png": A3},
            {"img.png": COPY},
        ),
        # both added differently
        ({}, {"img.png": A2}, {"img.png": A3}, {COPY: A2}, {"img.png": A3}, {"img.png": COPY}),
        # delete vs modify keeps the modified bytes, whichever side deleted
        ({"img.png": A}, {"img.png": None}, {"img.png": A2}, {}, {"img.png": A2}, {}),
        ({"img.png": A}, {"img.png": A2}, {"img.png": None}, {"img.png": A2}, {}, {}),
        # a remote change back to the base is no change
        ({"img.png": A}, {"img.png": A2}, {"img.png": A}, {"img.png": A2}, {}, {}),
        # file here, folder there: the folder stays, the file is saved under its conflict name
        ({}, {"cam0": A2}, {"cam0/x.jpg": A3}, {CAM: A2}, {"cam0/x.jpg": A3}, {"cam0": CAM}),
        # at any depth, and case-insensitively
        (
            {},
            {"Cam0": A2},
            {"cam0/d/x": A3},
            {"Cam0" + CAM[4:]: A2},
            {"cam0/d/x": A3},
            {"Cam0": "Cam0" + CAM[4:]},
        ),
        # folder here, file there: the server's file moves (deleted, committed at its copy)
        (
            {},
            {"cam0/x.jpg": A2},
            {"cam0": A3},
            {"cam0/x.jpg": A2, "cam0": None, CAM: A3},
            {CAM: A3},
            {"cam0": CAM},
        ),
        # the server replaced the folder by a file while a file was added into it here
        (
            {"cam0/a.jpg": A},
            {"cam0/b.jpg": A2},
            {"cam0/a.jpg": None, "cam0": A3},
            {"cam0/b.jpg": A2, "cam0": None, CAM: A3},
            {"cam0/a.jpg": None, CAM: A3},
            {"cam0": CAM},
        ),
        # a file added here where an evicted (unchanged) base file makes a folder
        ({"cam0/x": A}, {"cam0": A2}, {}, {CAM: A2}, {}, {"cam0": CAM}),
        # case twins added on both sides: like both added, the remote keeps its name
        ({}, {"img.png": A2}, {"IMG.png": A3}, {COPY: A2}, {"IMG.png": A3}, {"img.png": COPY}),
        # case twin of an unchanged base path
        ({"IMG.png": A}, {"img.png": A2}, {}, {COPY: A2}, {}, {"img.png": COPY}),
        # case twins both made here: the later name moves
        ({}, {"IMG.png": A2, "img.png": A3}, {}, {"IMG.png": A2, COPY: A3}, {}, {"img.png": COPY}),
    ],
)
def test_merge_table(base, local, remote, commit, take_remote, copies):
    r = run(base, local, remote)
    assert r.commit == commit
    assert r.take_remote == take_remote
    assert r.conflict_copies == copies


def test_reference_case_merges_to_union_without_conflict():
    base = {"A": A, "B": A2, "C": A3}
    robot1 = {"D": Entry("d" * 64, 4), "C": None}
    robot2 = {"E": Entry("e" * 64, 5)}
    r = run(base, robot2, robot1)
    assert r.commit == {"E": Entry("e" * 64, 5)}
    assert r.take_remote == {"C": None, "D": Entry("d" * 64, 4)}
    assert not r.conflicts


@pytest.mark.parametrize(
    ("policy", "commit", "take_remote"),
    [
        ("ours", {"img.png": A2}, {}),
        ("theirs", {}, {"img.png": A3}),
    ],
)
def test_ours_and_theirs_pick_one_side(policy, commit, take_remote):
    r = run({"img.png": A}, {"img.png": A2}, {"img.png": A3}, policy=policy)
    assert (r.commit, r.take_remote, r.conflict_copies) == (commit, take_remote, {})
    assert [n.outcome for n in r.conflicts] == [policy]


def test_newest_prefers_the_later_side():
    args = ({"img.png": A}, {"img.png": A2}, {"img.png": A3})
    newer_local = run(*args, policy="newest", local_mtimes={"img.png": 200.0}, remote_time=100.0)
    assert newer_local.commit == {"img.png": A2}
    newer_remote = run(*args, policy="newest", local_mtimes={"img.png": 50.0}, remote_time=100.0)
    assert newer_remote.take_remote == {"img.png": A3} and not newer_remote.commit


def test_newest_without_times_keeps_both():
    r = run({"img.png": A}, {"img.png": A2}, {"img.png": A3}, policy="newest")
    assert r.conflict_copies == {"img.png": COPY}


def test_conflict_copy_name_keeps_folder_and_extension():
    assert conflict_path("cam0/f.001.jpg", "robot/7 x", WHEN) == (
        "cam0/f.001.conflict-robot_7_x-20250304T050607.jpg"
    )
    assert conflict_path("noext", "r", WHEN) == "noext.conflict-r-20250304T050607"
    assert conflict_path(".hidden", "r", WHEN) == ".hidden.conflict-r-20250304T050607"


def test_conflict_copy_name_avoids_paths_in_use():
    r = run({"img.png": A}, {"img.png": A2}, {"img.png": A3}, taken=lambda p: p == COPY)
    (copy,) = r.conflict_copies.values()
    assert copy != COPY and copy.endswith(".png") and "conflict-r2-2" in copy


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown merge policy"):
        run({}, {}, {}, policy="mine")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "commit", "take_remote"),
    [
        ("ours", {"img.png": A2, "IMG.png": None}, {"IMG.png": None}),
        ("theirs", {}, {"IMG.png": A3, "img.png": None}),
    ],
)
def test_case_twins_follow_ours_and_theirs(policy, commit, take_remote):
    r = run({}, {"img.png": A2}, {"IMG.png": A3}, policy=policy)
    assert (r.commit, r.take_remote, r.conflict_copies) == (commit, take_remote, {})
    assert [n.outcome for n in r.conflicts] == [policy]


def test_a_conflict_name_in_use_as_a_folder_or_case_twin_is_skipped():
    taken_by_folder = run({}, {"cam0": A2}, {"cam0/x.jpg": A3, CAM.upper() + "/y": A})
    assert taken_by_folder.conflict_copies == {"cam0": "cam0.conflict-r2-2-20250304T050607"}
    assert taken_by_folder.commit == {"cam0.conflict-r2-2-20250304T050607": A2}


def test_every_clash_is_reported_as_a_conflict():
    r = run({}, {"cam0": A2, "img.png": A2}, {"cam0/x.jpg": A3, "IMG.png": A3})
    assert {n.path: n.outcome for n in r.conflicts} == {"cam0": "kept-both", "img.png": "kept-both"}
    assert "needs a folder" in next(n.detail for n in r.conflicts if n.path == "cam0")


def _fits(path: str) -> bool:
    return path_problem(path) is None and all(len(s.encode()) <= 255 for s in path.split("/"))


def test_conflict_copy_of_a_244_byte_name_keeps_every_name_within_255_bytes():
    for name in ("a" * 240 + ".jpg", "é" * 120 + ".jpg", "€" * 80 + ".jpg", "x" * 244):
        copy = conflict_path("cam0/" + name, "r2", WHEN)
        assert _fits(copy), copy
        assert "conflict-r2-20250304T050607" in copy and copy.startswith("cam0/" + name[:50])
        assert copy.endswith(".jpg") == name.endswith(".jpg")


def test_conflict_copy_of_a_1014_byte_path_stays_within_the_path_limit():
    folders = "/".join(["d" * 200] * 4)  # 803 bytes with the slashes
    for name in ("f" * 206 + ".jpg", "ü" * 103 + ".jpg", "a.jpg"):
        path = f"{folders}/{name}"
        copy = conflict_path(path, "r2", WHEN)
        assert _fits(copy), (len(path.encode()), len(copy.encode()))
        assert copy.startswith(folders + "/") and copy != path
    deepest = "/".join(["d" * 254] * 4) + "/" + "e" * 3  # 1022 bytes: only a short tag fits
    assert _fits(conflict_path(deepest, "r2", WHEN))


def test_shortened_conflict_names_stay_unique():
    stem = "s" * 300
    long_a, long_b = stem[:240] + "A.jpg", stem[:240] + "B.jpg"
    r = run({}, {long_a: A2, long_b: A2}, {long_a: A3, long_b: A3})
    copies = list(r.conflict_copies.values())
    assert len(set(copies)) == 2 and all(_fits(c) for c in copies)
    assert set(r.commit) == set(copies)


def test_a_twin_inside_a_folder_that_clashes_with_a_file_is_resolved():
    r = run({}, {"Cam0": A2, "CAM0/y.jpg": A}, {"cam0/y.jpg": A3})
    final = {**{"cam0/y.jpg": A3}, **{p: e for p, e in r.commit.items() if e is not None}}
    tree = CaseTree(final)
    assert [tree.clash(p) for p in final] == [None] * len(final)
    assert sorted(e.digest for e in final.values()) == sorted(x.digest for x in (A, A2, A3))
