"""One file never sinks a push: files that change, vanish or cannot be read are left out.

Each test runs the real ``robosync push`` against a real server whose store
sits behind a throttling proxy, so the push is still uploading a large file
when the test changes the folder under it. Every other file is committed,
the exit code says "committed with files left out", and a second push
completes the set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from robosync.client import LeftOut
from robosync.digest import BLOCK_SIZE
from tests.client.conftest import ProxiedServer, Robot, folder_digests, project_name
from tests.client.proxy import wait_for

EXIT_LEFT_OUT = 3
# bytes/s per connection: a 3-block file takes a few seconds, time enough to act
RATE = 6 * 1024 * 1024


def robot_on(proxied: ProxiedServer, tmp_path: Path, name: str, token: str | None = None) -> Robot:
    token = token or proxied.server.make_token(f"user-{uuid.uuid4().hex[:8]}", name)
    return Robot(name, proxied.server.url, token, tmp_path / name)


def push_while(robot: Robot, proxied: ProxiedServer, act) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """Run ``robosync push --json`` one transfer at a time; ``act()`` once its first part landed.

    Files upload in path order, so ``a_big.bin`` (3 blocks) goes first and
    every other file is still waiting while ``act`` changes the folder.
    """
    proxied.proxy.reset()
    proxied.proxy.rate = RATE
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "robosync.client.cli", "push", "--json", "--jobs", "1"],
            cwd=robot.root,
            env=robot.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_for(lambda: len(proxied.proxy.puts(accepted=True)) >= 1, timeout=60)
            act()
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        proxied.proxy.rate = None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_clone_matches(proxied: ProxiedServer, tmp_path: Path, robot: Robot, name: str) -> None:
    """A fresh clone of ``name`` holds exactly the files of ``robot``'s folder."""
    other = robot_on(proxied, tmp_path, f"verifier-{uuid.uuid4().hex[:6]}", token=robot.token)
    other.clone(name).close()
    assert folder_digests(other.root) == folder_digests(robot.root)


@contextmanager
def appended_to_while_hashed(monkeypatch: pytest.MonkeyPatch, file: Path, rest: bytes):
    """While the block runs, ``file`` grows by ``rest`` right after a scan hashed it."""
    import robosync.client.scan as scan_module

    real = scan_module.digest_stream
    before = file.stat().st_size

    def digest_then_append(stream):  # type: ignore[no-untyped-def]
        d = real(stream)
        if d.size == before and os.fstat(stream.fileno()).st_ino == file.stat().st_ino:
            with open(file, "ab") as f:
                f.write(rest)
        return d

    monkeypatch.setattr(scan_module, "digest_stream", digest_then_append)
    try:
        yield
    finally:
        monkeypatch.setattr(scan_module, "digest_stream", real)


def test_file_rewritten_during_its_multipart_upload_is_left_out_and_pushed_next_time(
    proxied: ProxiedServer, tmp_path: Path
):
    r1 = robot_on(proxied, tmp_path, "r1")
    name = project_name()
    with r1.init(name) as p:
        p.save_image("a_big.bin", os.urandom(2 * BLOCK_SIZE + 1_000_000))
        for i in range(6):
            p.save_image(f"cam/{i}.png", os.urandom(50_000 + i))
    big = r1.root / "a_big.bin"

    def rewrite_last_block_keeping_mtime() -> None:
        # Same size, inode and mtime: only the store's checksum can tell.
        st = big.stat()
        with open(big, "r+b") as f:
            f.seek(2 * BLOCK_SIZE)
            f.write(os.urandom(1_000_000))
        os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))

    first = push_while(r1, proxied, rewrite_last_block_keeping_mtime)
    assert first.returncode == EXIT_LEFT_OUT, first.stderr
    result = json.loads(first.stdout)
    assert result["committed"] and result["added"] == 6
    [left] = result["left_out"]
    assert left["path"] == "a_big.bin" and "BadDigest" in left["reason"], left
    assert first.stderr.strip().splitlines() == [
        f"robosync: warning: left out a_big.bin: {left['reason']}; the next push picks it up"
    ]

    second = r1.cli("push", "--json")
    again = json.loads(second.stdout)
    # hashed from scratch although its stat never moved: the stale digest is gone
    assert again["committed"] and again["hashed"] == 1 and again["added"] == 1
    assert again["left_out"] == []
    # the new content is a new digest: no part of the old content's upload is reused
    assert again["parts_skipped"] == 0 and again["parts_sent"] == 3
    assert_clone_matches(proxied, tmp_path, r1, name)


def test_a_blob_whose_file_changed_is_uploaded_from_a_duplicate_of_it(
    proxied: ProxiedServer, tmp_path: Path
):
    r1 = robot_on(proxied, tmp_path, "r1")
    name = project_name()
    data = os.urandom(2 * BLOCK_SIZE + 1_000_000)
    with r1.init(name) as p:
        p.save_image("a_big.bin", data)
        p.save_image("z_same.bin", data)
    big = r1.root / "a_big.bin"

    def rewrite_last_block_keeping_mtime() -> None:
        st = big.stat()
        with open(big, "r+b") as f:
            f.seek(2 * BLOCK_SIZE)
            f.write(os.urandom(1_000_000))
        os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))

    first = push_while(r1, proxied, rewrite_last_block_keeping_mtime)
    assert first.returncode == EXIT_LEFT_OUT, first.stderr
    result = json.loads(first.stdout)
    assert [x["path"] for x in result["left_out"]] == ["a_big.bin"]
    # the blob was finished from the duplicate: the parts the store took from
    # a_big.bin had the same block hashes, so they were kept, not sent again
    assert result["committed"] and result["added"] == 1 and result["parts_skipped"] == 2
    r1.cli("push")
    assert_clone_matches(proxied, tmp_path, r1, name)


def test_deleted_rewritten_and_unreadable_files_are_left_out_and_the_rest_committed(
    proxied: ProxiedServer, tmp_path: Path
):
    r1 = robot_on(proxied, tmp_path, "r1")
    name = project_name()
    kept = {f"keep/{i}.png": os.urandom(40_000 + i) for i in range(4)}
    with r1.init(name) as p:
        p.save_image("a_big.bin", os.urandom(2 * BLOCK_SIZE + 1_000_000))
        p.save_image("b_gone.png", os.urandom(30_000))
        p.save_image("c/under_moved_folder.png", os.urandom(31_000))
        p.save_image("d_fifo.png", os.urandom(32_000))
        p.save_image("e_rewritten.png", os.urandom(33_000))
        for rel, data in kept.items():
            p.save_image(rel, data)
    root = r1.root
    fifo_bytes = (root / "d_fifo.png").read_bytes()

    def break_four_files() -> None:
        (root / "b_gone.png").unlink()
        (root / "c").rename(tmp_path / "c-away")
        (root / "c").write_bytes(b"a file where the folder was")  # open(c/...) is ENOTDIR
        (root / "d_fifo.png").unlink()
        os.mkfifo(root / "d_fifo.png")  # reading it would block forever
        (root / "e_rewritten.png").write_bytes(os.urandom(34_000))

    first = push_while(r1, proxied, break_four_files)
    assert first.returncode == EXIT_LEFT_OUT, first.stderr
    result = json.loads(first.stdout)
    assert result["committed"]
    reasons = {x["path"]: x["reason"] for x in result["left_out"]}
    assert reasons == {
        "b_gone.png": "deleted during the push",
        "c/under_moved_folder.png": "cannot be read (Not a directory)",
        "d_fifo.png": "cannot be read (not a regular file any more)",
        "e_rewritten.png": "changed before it was uploaded (size or mtime moved)",
    }
    assert len(first.stderr.strip().splitlines()) == 4

    # the folder heals: the second push commits what is there now
    (root / "c").unlink()
    shutil.move(tmp_path / "c-away", root / "c")
    (root / "d_fifo.png").unlink()
    (root / "d_fifo.png").write_bytes(fifo_bytes)
    second = r1.cli("push", "--json")
    again = json.loads(second.stdout)
    assert again["committed"] and again["left_out"] == [] and again["added"] == 3
    assert_clone_matches(proxied, tmp_path, r1, name)


def test_only_files_left_out_commits_nothing_and_says_so(proxied: ProxiedServer, tmp_path: Path):
    r1 = robot_on(proxied, tmp_path, "r1")
    with r1.init(project_name()) as p:
        p.save_image("a_big.bin", os.urandom(2 * BLOCK_SIZE + 1_000_000))
    first = push_while(r1, proxied, lambda: (r1.root / "a_big.bin").unlink())
    assert first.returncode == EXIT_LEFT_OUT, first.stderr
    result = json.loads(first.stdout)
    assert not result["committed"] and result["version"] == 0
    assert result["left_out"] == [{"path": "a_big.bin", "reason": "deleted during the push"}]
    assert r1.cli("push").stdout.startswith("nothing to push")


def test_pull_keeps_the_bytes_of_a_file_that_changed_while_it_was_hashed(
    proxied: ProxiedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    r1 = robot_on(proxied, tmp_path, "r1")
    r2 = robot_on(proxied, tmp_path, "r2", token=r1.token)
    name = project_name()
    with r1.init(name) as p:
        p.save_image("x.png", b"base version")
        p.push()
    with r2.clone(name) as p:
        p.save_image("x.png", b"their version")
        p.push()
    (r1.root / "x.png").write_bytes(b"mine, half written")
    x = r1.root / "x.png"
    with appended_to_while_hashed(monkeypatch, x, b", and the rest"), r1.open() as p:
        pulled = p.pull()
    # x.png was left out of the scan: its bytes are not known, so the pull
    # merged it as a local change (keep-both) instead of overwriting it
    [note] = [n for n in pulled.merged if n.path == "x.png"]
    files = {k: (r1.root / k).read_bytes() for k in folder_digests(r1.root)}
    assert files["x.png"] == b"their version"
    [copy] = [k for k in files if k != "x.png"]
    assert files[copy] == b"mine, half written, and the rest", note
    with r1.open() as p:
        assert p.push().committed
    assert_clone_matches(proxied, tmp_path, r1, name)


def test_python_push_lists_what_it_left_out_and_commits_the_rest(
    proxied: ProxiedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    r1 = robot_on(proxied, tmp_path, "r1")
    name = project_name()
    with r1.init(name) as p:
        p.save_image("steady.png", b"steady")
        p.save_image("growing.png", b"first half")
    growing = r1.root / "growing.png"
    with appended_to_while_hashed(monkeypatch, growing, b" and the rest"), r1.open() as p:
        result = p.push()
    assert result.committed and (result.added, result.version) == (1, 1)
    assert result.left_out == [
        LeftOut("growing.png", "changed while it was hashed (size or mtime moved)")
    ]
    with r1.open() as p:
        again = p.push()
    assert again.committed and again.left_out == [] and again.added == 1
    assert_clone_matches(proxied, tmp_path, r1, name)
