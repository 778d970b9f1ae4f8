"""The local index: set-wise changes end as the same changes made one by one would."""

from __future__ import annotations

from pathlib import Path

from robosync.client.index import LANDING, LOCAL, REMOTE, Entry, FileRow, Index


def test_base_changes_applied_together_end_as_their_last_change_per_path(tmp_path: Path):
    index = Index(tmp_path)
    a, b = Entry("a" * 64, 1), Entry("b" * 64, 2)
    with index.transaction():
        index.apply_to_base([("kept.png", a), ("gone.png", a), ("back.png", a)])
        index.apply_to_base(
            [("gone.png", b), ("gone.png", None), ("back.png", None), ("back.png", b)]
        )
    assert index.base_manifest() == {"kept.png": a, "back.png": b}


def test_remote_only_rows_are_recorded_for_every_path(tmp_path: Path):
    index = Index(tmp_path)
    a, b = Entry("a" * 64, 1), Entry("b" * 64, 2)
    with index.transaction():
        index.set_remote_only_many([("x/one.png", a), ("two.png", b)], REMOTE)
    assert {(r.path, r.entry) for r in index.paths_in_state(REMOTE)} == {
        ("x/one.png", a),
        ("two.png", b),
    }


def test_digests_held_are_those_a_local_file_has_however_many_are_asked(tmp_path: Path):
    index = Index(tmp_path)
    digests = [f"{i:064x}" for i in range(1200)]  # more than one query's worth
    states = (LOCAL, REMOTE, LANDING)
    with index.transaction():
        index.put_files(
            FileRow(f"f{i}.png", 1, 0, 0, d, None, states[i % 3]) for i, d in enumerate(digests)
        )
    assert index.digests_held([*digests, "f" * 64]) == set(digests[::3])
