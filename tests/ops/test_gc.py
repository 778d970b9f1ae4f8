"""``robosync-server gc``: what it deletes, what it never deletes, and its race with pushes."""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from robosync.digest import BlobDigest, digest_bytes
from robosync.errors import MissingBlobs
from robosync.protocol import CommitHeader
from robosync.server.db.engine import Database
from robosync.server.db.models import BLOB_PRESENT, Blob, File, Project, Upload, utcnow
from robosync.server.services import commits, gc
from robosync.server.services.accounts import Principal
from robosync.server.services.blobs import blob_key, thumb_key
from robosync.server.services.commit_body import CommitDelta
from robosync.server.services.gc import GcPolicy, collect_garbage
from tests.ops.conftest import OpsServer
from tests.server.robot import Robot, delete, put

# The race below runs two robots of one user as fast as the machine lets them: on a
# quiet machine they passed 1200 requests a minute and were (rightly) refused. The
# limiter has its own tests (tests/flood, tests/limits); here it is off.
SERVER_ENV = {"ROBOSYNC_RATE_LIMIT": ""}


def _gc(server: OpsServer, *args: str) -> str:
    out = server.proc.run_cli("gc", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _blob_row(server: OpsServer, digest: str) -> Blob | None:
    with server.db.reading() as session:
        return session.get(Blob, digest)


def _stored(server: OpsServer, digest: str) -> bool:
    return server.store.head(blob_key(digest)) is not None


def _unique(tag: str, size: int = 2000) -> bytes:
    return (tag + os.urandom(8).hex()).encode().ljust(size, b".")


def test_gc_deletes_unreferenced_blobs_past_grace_and_keeps_referenced(
    ops_server: OpsServer,
) -> None:
    robot = ops_server.robot()
    project = robot.new_project()
    kept = robot.upload(_unique("kept"))
    orphan = robot.upload(_unique("orphan"))
    assert robot.commit(project, 0, [put("a.jpg", kept)]).status_code == 201

    # A thumbnail the console made of the orphan goes with it; the kept one's stays.
    for blob in (kept, orphan):
        ops_server.store.put_bytes(thumb_key(blob.digest), b"RIFF-thumbnail")

    _gc(ops_server, "--grace", "1h")
    assert _stored(ops_server, orphan.digest), "a blob inside the grace period was deleted"

    out = _gc(ops_server, "--grace", "0", "--dry-run")
    assert re.search(r"blobs: would delete [1-9]\d* \(\d+ bytes\)", out), out
    assert _stored(ops_server, orphan.digest) and _blob_row(ops_server, orphan.digest)

    out = _gc(ops_server, "--grace", "0")
    assert re.search(r"blobs: deleted [1-9]\d* \(\d+ bytes\)", out), out
    assert _blob_row(ops_server, orphan.digest) is None
    assert not _stored(ops_server, orphan.digest)
    assert ops_server.store.get_bytes(thumb_key(orphan.digest)) is None
    assert ops_server.store.get_bytes(thumb_key(kept.digest)) == b"RIFF-thumbnail"
    row = _blob_row(ops_server, kept.digest)
    assert row is not None and row.state == BLOB_PRESENT
    assert _stored(ops_server, kept.digest)
    (plan,) = robot.plan([orphan])
    assert plan["status"] == "upload", "a deleted blob must be uploaded again"
    robot.close()


def test_retention_frees_blobs_only_of_dropped_versions(ops_server: OpsServer) -> None:
    robot = ops_server.robot()
    project = robot.new_project()
    old, new = robot.upload(_unique("v1")), robot.upload(_unique("v2"))
    assert robot.commit(project, 0, [put("a.jpg", old)]).status_code == 201
    assert robot.commit(project, 1, [put("a.jpg", new)]).status_code == 201

    _gc(ops_server, "--grace", "0")
    assert _stored(ops_server, old.digest), "a blob of a kept version was deleted"

    out = _gc(ops_server, "--grace", "0", "--keep-versions", "1")
    assert re.search(r"versions: deleted [2-9]", out), out
    versions = robot.http.get(f"/v1/projects/{project}/versions").json()["versions"]
    assert [v["number"] for v in versions] == [2]
    assert _blob_row(ops_server, old.digest) is None and not _stored(ops_server, old.digest)
    assert _stored(ops_server, new.digest)
    assert robot.manifest(project) == {"a.jpg": new.digest}
    for pruned in ("manifest?version=1", "changes?since=1"):
        r = robot.http.get(f"/v1/projects/{project}/{pruned}")
        assert r.status_code == 410, r.text
        assert "pruned" in r.json()["error"]["message"]
    robot.close()


def _report_counts(out: str) -> list[int]:
    """Every number of the report lines (versions, file rows, uploads, blobs, bytes)."""
    return [
        int(n)
        for line in out.splitlines()
        if line.startswith("  ")
        for n in re.findall(r"\d+", line)
    ]


def test_dry_run_reports_exactly_what_the_real_run_deletes(ops_server: OpsServer) -> None:
    robot = ops_server.robot()
    project = robot.new_project()
    shared = robot.upload(_unique("shared"))
    for base in range(4):  # each version replaces a.jpg; b.jpg stays in every version
        files = [put("a.jpg", robot.upload(_unique(f"gen{base}", 3000 + base)))]
        if base == 0:
            files.append(put("b.jpg", shared))
        assert robot.commit(project, base, files).status_code == 201
    robot.upload(_unique("orphan"))
    abandoned = digest_bytes(_unique("abandoned"))
    robot.plan([abandoned])
    with ops_server.db.writing() as session:
        session.execute(
            update(Upload)
            .where(Upload.digest == abandoned.digest)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )

    args = ("--keep-versions", "2", "--grace", "0s")
    dry = _gc(ops_server, *args, "--dry-run")
    real = _gc(ops_server, *args)
    assert "would delete" in dry and "would abort" in dry and " deleted " not in dry
    assert _report_counts(dry) == _report_counts(real), f"dry run:\n{dry}\nreal run:\n{real}"
    blobs = re.search(r"blobs: deleted (\d+) \((\d+) bytes\)", real)
    assert blobs and int(blobs.group(1)) >= 4, real  # 2 pruned generations, orphan, abandoned
    assert _stored(ops_server, shared.digest), "a blob a kept version names was deleted"
    robot.close()


def test_gc_aborts_expired_multipart_uploads(ops_server: OpsServer) -> None:
    robot = ops_server.robot()
    big = digest_bytes(b"m" * (8 * 1024 * 1024 + 1))
    (plan,) = robot.plan([big])
    assert plan["upload_id"]
    key = blob_key(big.digest)
    assert ops_server.store.list_parts(key, plan["upload_id"]) is not None
    with ops_server.db.writing() as session:
        session.execute(
            update(Upload)
            .where(Upload.digest == big.digest)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )

    out = _gc(ops_server, "--grace", "24h")
    assert "aborted 1 expired" in out, out
    assert ops_server.store.list_parts(key, plan["upload_id"]) is None
    with ops_server.db.reading() as session:
        assert session.scalars(select(Upload.id).where(Upload.digest == big.digest)).all() == []
    assert _blob_row(ops_server, big.digest) is None, "the pending blob row was left behind"
    robot.close()


# -- the race: pushes reusing old digests while gc --grace 0 runs --------------------


def _upload_until_present(robot: Robot, data: bytes, blob: BlobDigest) -> None:
    for _ in range(20):
        (plan,) = robot.plan([blob])
        if plan["status"] == "present":
            return
        try:
            result = robot.complete(plan, robot.put_parts(plan, data))
        except AssertionError:  # the collector deleted the object under the PUT
            continue
        if result["status"] == "present":
            return
    raise AssertionError(f"could not upload {blob.digest}")


def _push_loop(
    robot: Robot, pool: list[tuple[bytes, BlobDigest]], stop: threading.Event, stats: dict[str, Any]
) -> None:
    project = robot.new_project("race")
    base, i = 0, 0
    while not stop.is_set():
        data, blob = pool[i % len(pool)]
        i += 1
        for _ in range(20):
            _upload_until_present(robot, data, blob)
            r = robot.commit(project, base, [put("img.jpg", blob)])
            if r.status_code == 201:
                base += 1
                break
            assert r.status_code == 422 and r.json()["error"]["code"] == "missing_blobs", r.text
            stats["missing"] += 1
        else:
            raise AssertionError("commit kept failing")
        stats["commits"] += 1
        # Deleting the path (then retention) makes the blob garbage again.
        assert robot.commit(project, base, [delete("img.jpg")]).status_code == 201
        base += 1
    stats["projects"].append(project)


def _collect_loop(server: OpsServer, stop: threading.Event, stats: dict[str, Any]) -> None:
    policy = GcPolicy(grace=timedelta(0), keep_versions=1)
    while not stop.is_set():
        stats["deleted"] += collect_garbage(server.db, server.store, policy).blobs_deleted


def test_gc_racing_pushes_never_leaves_a_committed_file_without_its_blob(
    ops_server: OpsServer,
) -> None:
    pool = [(d, digest_bytes(d)) for d in (_unique(f"race{i}") for i in range(6))]
    robots = [ops_server.robot("racer") for _ in range(2)]
    stop = threading.Event()
    stats: dict[str, Any] = {"missing": 0, "commits": 0, "deleted": 0, "projects": []}
    errors: list[BaseException] = []

    def guarded(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as e:
            errors.append(e)
            stop.set()

    threads = [
        threading.Thread(target=guarded, args=(_push_loop, r, pool, stop, stats)) for r in robots
    ]
    threads.append(threading.Thread(target=guarded, args=(_collect_loop, ops_server, stop, stats)))
    for t in threads:
        t.start()
    time.sleep(20)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    assert stats["commits"] > 10 and stats["deleted"] > 0, stats

    # Every file row of every project, any version, names a present blob the store holds.
    with ops_server.db.reading() as session:
        referenced = set(session.scalars(select(File.digest).distinct()))
        states = {d: s for d, s in session.execute(select(Blob.digest, Blob.state))}
    for digest in referenced:
        assert states.get(digest) == BLOB_PRESENT, (
            f"committed {digest} has blob {states.get(digest)}"
        )
        assert _stored(ops_server, digest), f"committed {digest} is missing from the store"
    # And robots can still read what was committed last.
    for robot, project in zip(robots, stats["projects"], strict=False):
        for digest in robot.manifest(project, version=None).values():
            r = robot.http.post(f"/v1/projects/{project}/downloads", json={"digests": [digest]})
            assert r.status_code == 200, r.text
            assert httpx.get(r.json()["items"][0]["url"], timeout=30).status_code == 200
        robot.close()


# -- the two interleavings of a commit and the collector, made to happen ---------------


def _principal(server: OpsServer, project: int) -> Principal:
    with server.db.reading() as session:
        owner = session.get_one(Project, project).owner_id
    return Principal(user_id=owner, user_name="ops", robot="r")


def test_commit_refuses_a_blob_chosen_for_deletion_after_its_presence_check(
    ops_server: OpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    robot = ops_server.robot()
    project = robot.new_project()
    blob = robot.upload(_unique("late"))
    checked = commits._check_blobs_present

    def check_then_collect(db: Database, who: Principal, digests: set[str]) -> None:
        checked(db, who, digests)
        later = utcnow() + timedelta(hours=1)
        assert gc._mark_deleting(db, sorted(digests), later, utcnow()), "not chosen"

    monkeypatch.setattr(commits, "_check_blobs_present", check_then_collect)
    delta = CommitDelta(
        header=CommitHeader(base_version=0, message=""),
        puts={"a.jpg": (blob.digest, blob.size)},
    )
    with pytest.raises(MissingBlobs):
        commits.commit(ops_server.db, _principal(ops_server, project), project, delta, None)
    assert robot.manifest(project) == {}
    robot.close()


def test_collector_skips_a_blob_a_commit_transaction_holds(ops_server: OpsServer) -> None:
    if ops_server.db.is_sqlite:
        pytest.skip("on SQLite a commit's write transaction excludes the collector's entirely")
    robot = ops_server.robot()
    blob = robot.upload(_unique("held"))
    later = utcnow() + timedelta(hours=1)
    with ops_server.db.writing() as session:
        commits._require_present(session, {blob.digest}, lock=True)
        assert gc._mark_deleting(ops_server.db, [blob.digest], later, utcnow()) == []
    row = _blob_row(ops_server, blob.digest)
    assert row is not None and row.state == BLOB_PRESENT
    robot.close()
