"""Three-way merge: DESIGN.md's table, one row per case."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from robosync.client.merge import Entry, conflict_path, merge

A = Entry("a" * 64, 1)
A2 = Entry("b" * 64, 2)
A3 = Entry("c" * 64, 3)
WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
COPY = "img.conflict-r2-20250304T050607.png"


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
