"""Commits: compare-and-swap, idempotency, validation, and the versions they produce."""

from __future__ import annotations

import json
import os
import threading
import uuid

import httpx
import pytest

from tests.server.robot import Robot, delete, put


def _blob(robot: Robot, label: str) -> object:
    return robot.upload(f"{label}-{uuid.uuid4()}".encode())


def test_two_commits_racing_on_the_same_base_give_one_201_and_one_409(alice: Robot) -> None:
    project = alice.new_project()
    a, b = alice.upload(os.urandom(100)), alice.upload(os.urandom(100))
    barrier = threading.Barrier(2)
    results: list[httpx.Response] = []

    def commit(path: str, blob: object) -> None:
        robot = Robot(alice.base_url, alice.token)
        barrier.wait()
        results.append(robot.commit(project, 0, [put(path, blob)]))  # type: ignore[arg-type]
        robot.close()

    threads = [
        threading.Thread(target=commit, args=("a.jpg", a)),
        threading.Thread(target=commit, args=("b.jpg", b)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [201, 409]
    lost = next(r for r in results if r.status_code == 409).json()["error"]
    assert lost["code"] == "conflict"
    assert lost["details"]["head_version"] == 1
    assert len(alice.manifest(project)) == 1


def test_retried_commit_with_the_same_idempotency_key_returns_the_first_version(
    alice: Robot,
) -> None:
    project = alice.new_project()
    a, b = alice.upload(os.urandom(64)), alice.upload(os.urandom(64))
    key = str(uuid.uuid4())
    first = alice.commit(project, 0, [put("a.jpg", a)], key=key)
    assert first.status_code == 201
    assert alice.commit(project, 1, [put("b.jpg", b)]).status_code == 201  # head moves on
    retry = alice.commit(project, 0, [put("a.jpg", a)], key=key)
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.json()["version"] == 1
    assert alice.http.get(f"/v1/projects/{project}").json()["head_version"] == 2
    reused = alice.commit(project, 2, [delete("a.jpg")], key=key)
    assert reused.status_code == 422


def test_commit_naming_an_absent_digest_is_422_listing_it(alice: Robot) -> None:
    project = alice.new_project()
    present = alice.upload(os.urandom(10))
    absent = "ab" * 32
    r = alice.commit(
        project,
        0,
        [put("ok.jpg", present), {"op": "put", "path": "gone.jpg", "digest": absent, "size": 3}],
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "missing_blobs"
    assert err["details"]["missing"] == [absent]
    assert alice.http.get(f"/v1/projects/{project}").json()["head_version"] == 0


def test_a_put_whose_size_is_not_its_blobs_is_400_naming_both_sizes(alice: Robot) -> None:
    project = alice.new_project()
    blob = alice.upload(os.urandom(10))
    wrong = {**put("a.jpg", blob), "size": 11}
    r = alice.commit(project, 0, [put("ok.jpg", blob), wrong])
    assert r.status_code == 400, r.text
    details = r.json()["error"]["details"]
    assert details == {"path": "a.jpg", "digest": blob.digest, "size": 11, "blob_size": 10}
    assert alice.http.get(f"/v1/projects/{project}").json()["head_version"] == 0


def test_stale_base_is_409_with_the_head(alice: Robot) -> None:
    project = alice.new_project()
    blob = alice.upload(os.urandom(10))
    assert alice.commit(project, 0, [put("a.jpg", blob)]).status_code == 201
    r = alice.commit(project, 0, [put("b.jpg", blob)])
    assert r.status_code == 409
    assert r.json()["error"]["details"]["head_version"] == 1


BAD_PATHS = [
    ("/etc/passwd", "absolute"),
    ("C:/x.jpg", "drive letter"),
    ("a/../b.jpg", "'..'"),
    ("a\\b.jpg", "backslash"),
    ("a\x00b.jpg", "control"),
    ("a\x1fb.jpg", "control"),
    ("x" * 1025, "longer than 1024"),
    ("a//b.jpg", "empty"),
    ("./a.jpg", "'.'"),
    (".robosync/index.db", "reserved"),
    ("e\u0301.jpg", "NFC"),
    ("\ud800.jpg", "UTF-8"),
    ("", "empty"),
]


@pytest.mark.parametrize(("path", "reason"), BAD_PATHS, ids=[r for _, r in BAD_PATHS])
def test_invalid_path_is_refused_with_400_naming_the_path(
    alice: Robot, path: str, reason: str
) -> None:
    project = alice.new_project("paths")
    blob = alice.upload(b"path-table")
    line = json.dumps({"op": "put", "path": path, "digest": blob.digest, "size": blob.size})
    body = json.dumps({"base_version": 0}) + "\n" + line + "\n"
    r = alice.http.post(f"/v1/projects/{project}/commits", content=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_input"
    assert err["details"]["path"] == path
    assert err["details"]["line"] == 2
    assert reason.lower() in err["message"].lower()


def test_path_that_is_not_utf8_is_refused_with_400_naming_the_line(alice: Robot) -> None:
    project = alice.new_project("paths")
    blob = alice.upload(b"path-table")
    line = b'{"op":"put","path":"bad\xff.jpg","digest":"%s","size":%d}' % (
        blob.digest.encode(),
        blob.size,
    )
    r = alice.http.post(
        f"/v1/projects/{project}/commits", content=b'{"base_version":0}\n' + line + b"\n"
    )
    assert r.status_code == 400
    assert r.json()["error"]["details"]["line"] == 2


def test_same_path_twice_in_one_commit_is_400(alice: Robot) -> None:
    project = alice.new_project()
    blob = alice.upload(b"twice")
    r = alice.commit(project, 0, [put("a.jpg", blob), delete("a.jpg")])
    assert r.status_code == 400
    assert r.json()["error"]["details"]["path"] == "a.jpg"


def test_paths_differing_only_in_case_are_422_naming_both(alice: Robot) -> None:
    project = alice.new_project()
    blob = alice.upload(b"case")
    assert alice.commit(project, 0, [put("Cam/A.jpg", blob)]).status_code == 201
    r = alice.commit(project, 1, [put("cam/a.JPG", blob)])
    assert r.status_code == 422
    assert sorted(r.json()["error"]["details"]["paths"]) == ["Cam/A.jpg", "cam/a.JPG"]
    # A rename that changes only case is fine: the old path goes in the same commit.
    renamed = alice.commit(project, 1, [delete("Cam/A.jpg"), put("cam/a.JPG", blob)])
    assert renamed.status_code == 201
    assert alice.manifest(project) == {"cam/a.JPG": blob.digest}


def test_manifest_and_changes_follow_the_versions(alice: Robot) -> None:
    project = alice.new_project()
    a, b, c, d, b2 = (alice.upload(os.urandom(50)) for _ in range(5))
    r1 = alice.commit(project, 0, [put("a.jpg", a), put("b.jpg", b), put("c.jpg", c)])
    assert r1.status_code == 201
    assert r1.json()["file_count"] == 3
    r2 = alice.commit(
        project, 1, [put("d.jpg", d), delete("c.jpg"), put("b.jpg", b2), delete("never.jpg")]
    )
    assert r2.status_code == 201, r2.text
    assert r2.json() == {
        "version": 2,
        "files_added": 2,
        "files_modified": 1,
        "files_removed": 1,
        "file_count": 3,
        "total_bytes": 150,
    }
    assert alice.manifest(project, 1) == {"a.jpg": a.digest, "b.jpg": b.digest, "c.jpg": c.digest}
    assert alice.manifest(project) == {"a.jpg": a.digest, "b.jpg": b2.digest, "d.jpg": d.digest}
    changes = alice.changes(project, 1)
    assert sorted((x["op"], x["path"]) for x in changes) == [
        ("delete", "c.jpg"),
        ("put", "b.jpg"),
        ("put", "d.jpg"),
    ]
    assert alice.changes(project, 2) == []
    # Deleted then re-added: a put since 1, not a delete.
    assert alice.commit(project, 2, [delete("a.jpg")]).status_code == 201
    assert alice.commit(project, 3, [put("a.jpg", a)]).status_code == 201
    assert ("delete", "a.jpg") not in {(x["op"], x["path"]) for x in alice.changes(project, 1)}
    versions = alice.http.get(f"/v1/projects/{project}/versions").json()["versions"]
    assert [v["number"] for v in versions] == [4, 3, 2, 1, 0]
    r = alice.http.get(f"/v1/projects/{project}/manifest", params={"version": 2})
    assert r.headers["x-robosync-version"] == "2"


def test_commit_line_over_the_size_cap_is_413_naming_the_line(alice: Robot) -> None:
    project = alice.new_project()
    blob = alice.upload(b"cap")
    long_path = "d/" * 5000 + "x.jpg"  # valid segments, but the line is over 8 KiB
    r = alice.commit(project, 0, [put("ok.jpg", blob), put(long_path, blob)])
    assert r.status_code == 413
    assert r.json()["error"]["details"]["line"] == 3


def test_commit_without_a_header_line_is_400(alice: Robot) -> None:
    project = alice.new_project()
    r = alice.http.post(f"/v1/projects/{project}/commits", content=b"")
    assert r.status_code == 400
    r = alice.http.post(
        f"/v1/projects/{project}/commits", content=b'{"op":"delete","path":"a.jpg"}\n'
    )
    assert r.status_code == 400
    assert r.json()["error"]["details"]["line"] == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (["cam0"], ["cam0/x.jpg"]),  # a file, then a path under it
        (["cam0/x.jpg"], ["cam0"]),  # a folder, then a file of its name
        (["a/b/c/d.jpg"], ["a/b"]),  # at any depth
        (["a/b"], ["a/b/c/d.jpg"]),
        (["Cam0"], ["cam0/x.jpg"]),  # case-insensitively too
        (["cam0/X/y.jpg"], ["CAM0/x"]),
        ([], ["cam0", "cam0/x.jpg"]),  # within one commit
    ],
)
def test_a_path_that_is_both_file_and_folder_is_422_naming_both(
    alice: Robot, first: list[str], second: list[str]
) -> None:
    project = alice.new_project()
    blob = _blob(alice, "clash")
    base = 0
    if first:
        assert alice.commit(project, 0, [put(p, blob) for p in first]).status_code == 201
        base = 1
    r = alice.commit(project, base, [put(p, blob) for p in second])
    assert r.status_code == 422, r.text
    assert sorted(r.json()["error"]["details"]["paths"]) == sorted([*first, *second])[-2:]
    assert alice.manifest(project) == {p: blob.digest for p in first}  # type: ignore[attr-defined]


def test_a_folder_can_become_a_file_when_its_files_go_in_the_same_commit(alice: Robot) -> None:
    project = alice.new_project()
    blob = _blob(alice, "swap")
    assert alice.commit(project, 0, [put("cam0/x.jpg", blob), put("cam1", blob)]).status_code == 201
    swapped = alice.commit(
        project, 1, [delete("cam0/x.jpg"), put("cam0", blob), delete("cam1"), put("cam1/y", blob)]
    )
    assert swapped.status_code == 201, swapped.text
    assert sorted(alice.manifest(project)) == ["cam0", "cam1/y"]
    # Siblings that only share a prefix are not folders of each other.
    near = [put("cam0.jpg", blob), put("cam0-b/x", blob), put("cam", blob)]
    assert alice.commit(project, 2, near).status_code == 201
