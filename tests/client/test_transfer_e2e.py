"""Resume after kill -9, cross-project dedup and download verification, measured at the store.

The counting proxy sits between robots and the blob store, so the bytes and
requests asserted here are the ones the store really received.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import boto3
import pytest

from robosync.client import confined
from robosync.client import transfer as transfer_module
from robosync.client.api import Api
from robosync.client.fetchloop import FetchLoop
from robosync.client.leftout import Stamp
from robosync.client.progress import NoProgress
from robosync.client.scan import TEMP_PREFIX
from robosync.client.transfer import (
    TEE_COPIES,
    Cancelled,
    DownloadTarget,
    Transfer,
    UploadSource,
    Written,
)
from robosync.digest import BLOCK_SIZE, digest_bytes
from robosync.errors import IntegrityError
from tests.client.conftest import (
    ProxiedServer,
    Robot,
    folder_digests,
    project_name,
    sha,
    skip_unless_direct_writes,
)
from tests.client.proxy import Exchange, wait_for
from tests.fixtures.server import ServerProcess


def robot_on(srv: ServerProcess, tmp_path: Path, name: str, token: str | None = None) -> Robot:
    token = token or srv.make_token(f"user-{uuid.uuid4().hex[:8]}", name)
    return Robot(name, srv.url, token, tmp_path / name)


def received_blocks(proxied: ProxiedServer) -> list[Exchange]:
    """PUTs whose whole body reached the store (whatever the answer reached the client)."""
    return [e for e in proxied.proxy.puts() if e.complete]


def accepted_bytes(proxied: ProxiedServer) -> int:
    return sum(e.body_bytes for e in proxied.proxy.puts(accepted=True))


def test_push_killed_mid_upload_resumes_without_resending_blocks(
    proxied: ProxiedServer, tmp_path: Path
):
    r1 = robot_on(proxied.server, tmp_path, "r1")
    files = {f"big{i}.bin": os.urandom(2 * BLOCK_SIZE + 3_000_000 + i) for i in range(2)}
    total = sum(len(b) for b in files.values())
    name = project_name()
    with r1.init(name) as p:
        for rel, data in files.items():
            p.save_image(rel, data)
    proxied.proxy.reset()
    proxied.proxy.rate = 6 * 1024 * 1024  # bytes/s per connection: slow enough to kill half way
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "robosync.client.cli", "push", "--jobs", "2"],
            cwd=r1.root,
            env=r1.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_for(lambda: len(proxied.proxy.puts(accepted=True)) >= 2, timeout=90)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    finally:
        proxied.proxy.rate = None
    before = len(received_blocks(proxied))
    accepted_before = len(proxied.proxy.puts(accepted=True))
    assert 2 <= before < 6, "the kill must land half way through the upload"
    rerun = r1.cli("push", "--json")
    result = json.loads(rerun.stdout)
    assert result["committed"] and result["parts_skipped"] >= accepted_before
    # 2 files x 3 blocks: the store received each block's bytes exactly once over
    # both runs (a body cut off by the kill is not a received block)
    received = received_blocks(proxied)
    assert len(received) == 6
    assert sum(e.body_bytes for e in received) == total
    r2 = robot_on(proxied.server, tmp_path, "r2", token=r1.token)
    r2.clone(name).close()
    assert folder_digests(r2.root) == {k: sha(v) for k, v in files.items()}


def test_second_project_sharing_images_uploads_only_new_bytes(
    proxied: ProxiedServer, tmp_path: Path
):
    r1 = robot_on(proxied.server, tmp_path, "r1")
    first = {f"a{i}.png": os.urandom(60_000 + i) for i in range(10)}
    shared = dict(list(first.items())[:2])
    second = {**{f"b/{k}": v for k, v in shared.items()}}
    second.update({f"b{i}.png": os.urandom(70_000 + i) for i in range(8)})
    with r1.init(project_name()) as p:
        for rel, data in first.items():
            p.save_image(rel, data)
        p.push()
    r2 = robot_on(proxied.server, tmp_path, "r2", token=r1.token)
    with r2.init(project_name()) as p:
        for rel, data in second.items():
            p.save_image(rel, data)
        proxied.proxy.reset()
        result = p.push()
    new_bytes = sum(len(v) for k, v in second.items() if not k.startswith("b/"))
    assert accepted_bytes(proxied) == new_bytes
    assert (result.already_present, result.uploaded_blobs) == (2, 8)


def test_clone_writes_every_copy_of_an_image_from_one_download(
    proxied: ProxiedServer, tmp_path: Path
):
    r1 = robot_on(proxied.server, tmp_path, "r1")
    image = os.urandom(300_000)  # large enough to be written past the page cache
    copies = {f"cam{i % 2}/same{i}.png": image for i in range(TEE_COPIES + 3)}
    name = project_name()
    with r1.init(name) as p:
        for rel, data in copies.items():
            p.save_image(rel, data)
        p.save_image("other.png", b"other")
        p.push()
    proxied.proxy.reset()
    r2 = robot_on(proxied.server, tmp_path, "r2", token=r1.token)
    r2.clone(name).close()
    expected = {**{k: sha(image) for k in copies}, "other.png": sha(b"other")}
    assert folder_digests(r2.root) == expected
    # The first TEE_COPIES copies come from the bytes of its one GET, the rest from the file.
    blob_gets = [e for e in proxied.proxy.exchanges if e.method == "GET" and "/blobs/" in e.path]
    assert len(blob_gets) == 2
    assert not list(r2.root.rglob(f"{TEMP_PREFIX}*"))


def corrupt_blob(server: ServerProcess, digest: str, size: int) -> None:
    """Replace the stored bytes of ``digest`` by other bytes of the same size."""
    bad = os.urandom(size)
    if "ROBOSYNC_S3_ENDPOINT" in server.env:
        s3 = boto3.client(
            "s3",
            endpoint_url=server.env["ROBOSYNC_S3_ENDPOINT"],
            aws_access_key_id=server.env["ROBOSYNC_S3_ACCESS_KEY"],
            aws_secret_access_key=server.env["ROBOSYNC_S3_SECRET_KEY"],
            region_name=server.env.get("ROBOSYNC_S3_REGION", "us-east-1"),
        )
        s3.put_object(Bucket=server.env["ROBOSYNC_S3_BUCKET"], Key=f"blobs/{digest}", Body=bad)
        return
    (found,) = [p for p in server.data_dir.rglob(digest) if p.parent.name == "blobs"]
    found.write_bytes(bad)


def test_clone_of_a_corrupted_blob_fails_clearly_without_partial_file(
    server: ServerProcess, tmp_path: Path
):
    r1 = robot_on(server, tmp_path, "r1")
    good, bad = os.urandom(40_000), os.urandom(50_000)
    name = project_name()
    with r1.init(name) as p:
        p.save_image("good.png", good)
        p.save_image("cam/bad.png", bad)
        p.save_image("copy/bad.png", bad)  # written from the same download: not either
        p.push()
    corrupt_blob(server, digest_bytes(bad).digest, len(bad))
    r2 = robot_on(server, tmp_path, "r2", token=r1.token)
    with pytest.raises(IntegrityError, match="bad.png"):
        r2.clone(name)
    assert folder_digests(r2.root) == {"good.png": sha(good)}
    assert not list(r2.root.rglob(f"{TEMP_PREFIX}*"))
    r3 = robot_on(server, tmp_path, "r3", token=r1.token)
    out = r3.cli("clone", name, str(r3.root / "clone"), check=False)
    assert out.returncode == 1
    assert out.stderr.startswith("robosync: error: cam/bad.png: the bytes received do not match")
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (r3.root / "clone" / "cam" / "bad.png").exists()


def pushed_for_download(
    proxied: ProxiedServer, tmp_path: Path, images: dict[str, bytes]
) -> tuple[int, Api, list[DownloadTarget]]:
    """Push ``images`` as a new project: its id, an API session of its owner (the caller
    closes it) and its files as download targets."""
    r1 = robot_on(proxied.server, tmp_path, "r1")
    with r1.init(project_name()) as p:
        for rel, data in images.items():
            p.save_image(rel, data)
        p.push()
        project_id = p.config.project_id
    api = Api(proxied.server.url, r1.token)
    with api.manifest(project_id) as (_, entries):
        targets = [DownloadTarget(e.path, e.digest, e.size) for e in entries]
    return project_id, api, targets


class StopAfter(NoProgress):
    """Progress that asks the transfer to stop once ``files`` files are written."""

    def __init__(self, files: int, stop: threading.Event) -> None:
        self.left, self.stop = files, stop

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Count written files; set ``stop`` at the limit."""
        self.left -= files
        if self.left <= 0:
            self.stop.set()


def test_a_stop_in_the_middle_of_small_downloads_reports_every_file_written(
    proxied: ProxiedServer, tmp_path: Path
):
    images = {f"img{i:02d}.png": os.urandom(20_000 + i) for i in range(60)}
    project_id, api, targets = pushed_for_download(proxied, tmp_path, images)
    stop = threading.Event()
    transfer = Transfer(api, jobs=4, progress=StopAfter(5, stop), cancel=stop)
    root = tmp_path / "partial"
    root.mkdir()
    try:
        written, errors = transfer.download(project_id, root, targets, lambda _: None)
    finally:
        transfer.close()
        api.close()
    assert any(isinstance(e, Cancelled) for e in errors)
    on_disk = {str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()}
    # What the stop left unwritten is absent; everything written is reported, whole.
    assert on_disk == {w.path for w in written}
    assert 5 <= len(written) < len(images)
    assert all(sha(images[w.path]) == folder_digests(root)[w.path] for w in written)


def test_small_images_sent_from_one_thread_leave_out_only_the_files_that_changed(
    proxied: ProxiedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    r1 = robot_on(proxied.server, tmp_path, "r1")
    with r1.init(project_name()):
        pass
    folder = tmp_path / "small"
    folder.mkdir()
    images = {f"img{i:02d}.png": os.urandom(20_000 + i) for i in range(30)}
    sources = []
    for rel, data in images.items():
        (folder / rel).write_bytes(data)
        d = digest_bytes(data)
        blocks = [b.sha256.hex() for b in d.blocks]
        stamp = Stamp.of(os.stat(folder / rel))
        sources.append(UploadSource(d.digest, d.size, blocks, folder / rel, stamp))
    # After the scan: new bytes under the same stamp (only the store can tell), a
    # deletion, and a rewrite that moves the stamp.
    same = folder / "img03.png"
    st = same.stat()
    same.write_bytes(os.urandom(st.st_size))
    os.utime(same, ns=(st.st_atime_ns, st.st_mtime_ns))
    (folder / "img05.png").unlink()
    (folder / "img07.png").write_bytes(b"shorter")
    sent_by_loop: list[int] = []
    real_put = FetchLoop.put

    def counting_put(loop, requests, body, on_done, between):  # type: ignore[no-untyped-def]
        sent_by_loop.append(len(requests))
        return real_put(loop, requests, body, on_done, between)

    monkeypatch.setattr(FetchLoop, "put", counting_put)
    proxied.proxy.reset()
    api = Api(proxied.server.url, r1.token)
    transfer = Transfer(api, jobs=4)
    try:
        troubled = transfer.upload(sources)
    finally:
        transfer.close()
        api.close()
    assert sent_by_loop == [30]
    by_name = {s.file.name: s.digest for s in sources}
    assert troubled == {
        by_name["img03.png"]: (
            "changed while it was uploaded (the store refused its bytes: BadDigest)"
        ),
        by_name["img05.png"]: "deleted during the push",
        by_name["img07.png"]: "changed before it was uploaded (size or mtime moved)",
    }
    # Every other image was taken once; the rewritten one was refused on the loop and
    # once more on the usual path, which gave the reason.
    accepted = [e.target.split("?")[0] for e in proxied.proxy.puts(accepted=True)]
    assert len(accepted) == len(set(accepted)) == 27
    refused = [e for e in proxied.proxy.puts() if e.status == 400]
    assert len(refused) == 2


def test_a_stop_in_the_middle_of_small_uploads_ends_the_upload(
    proxied: ProxiedServer, tmp_path: Path
):
    r1 = robot_on(proxied.server, tmp_path, "r1")
    folder = tmp_path / "small"
    folder.mkdir()
    sources = []
    for i in range(200):
        data = os.urandom(10_000 + i)
        (folder / f"{i:03d}.png").write_bytes(data)
        d = digest_bytes(data)
        sources.append(
            UploadSource(
                d.digest, d.size, [b.sha256.hex() for b in d.blocks], folder / f"{i:03d}.png"
            )
        )
    proxied.proxy.reset()
    proxied.proxy.rate = 200_000  # per connection: ~20 images a second on each
    stop = threading.Event()
    api = Api(proxied.server.url, r1.token)
    transfer = Transfer(api, jobs=2, progress=StopAfter(5, stop), cancel=stop)
    outcome: list[BaseException | None] = []

    def upload() -> None:
        try:
            transfer.upload(sources)
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    worker = threading.Thread(target=upload)
    try:
        worker.start()
        worker.join(60)
    finally:
        proxied.proxy.rate = None
        transfer.close()
        api.close()
    assert not worker.is_alive(), "the upload did not end after the stop"
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    assert 5 <= len(proxied.proxy.puts(accepted=True)) < len(sources)


def watched_clone(
    proxied: ProxiedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]
) -> tuple[Path, list[str], list[Path]]:
    """Download ``files`` into a new folder (checked against them, every file handed over
    as durable once, after every flush), watching its flushes: the folder, the name each
    ``fdatasync``'ed descriptor had, and the root of each ``syncfs``."""
    project_id, api, targets = pushed_for_download(proxied, tmp_path, files)
    flushed: list[str] = []
    synced_fs: list[Path] = []
    real_fdatasync = os.fdatasync
    real_syncfs = confined.sync_filesystem
    durable: list[str] = []
    order: list[str] = []  # "flushed" and "durable", as they happened

    def fdatasync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fdatasync(fd)
        order.append("flushed")

    def sync_filesystem(root: Path) -> None:
        synced_fs.append(root)
        real_syncfs(root)
        order.append("flushed")

    def on_durable(batch: list[Written]) -> None:
        durable.extend(w.path for w in batch)
        order.append("durable")

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(confined, "sync_filesystem", sync_filesystem)
    transfer = Transfer(api, jobs=4)
    root = tmp_path / "clone"
    root.mkdir()
    try:
        _, errors = transfer.download(project_id, root, targets, lambda _: None, on_durable)
    finally:
        transfer.close()
        api.close()
    assert not errors
    assert folder_digests(root) == {k: sha(v) for k, v in files.items()}
    assert sorted(durable) == sorted(files)
    assert order[-1] == "durable" and order.count("durable") == 1
    return root, flushed, synced_fs


def large_images() -> dict[str, bytes]:
    """Six images written past the page cache, a copy of one, and a small one."""
    files = {f"cam/big{i}.png": os.urandom(300_000 + i) for i in range(6)}
    files["cam/copy.png"] = files["cam/big0.png"]
    files["small.png"] = os.urandom(1000)
    return files


def test_large_images_are_flushed_by_one_syncfs_when_little_else_waits_to_be_written(
    proxied: ProxiedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    skip_unless_direct_writes(tmp_path)
    monkeypatch.setattr(transfer_module, "OTHERS_PENDING_LIMIT", 1 << 62)
    root, flushed, synced_fs = watched_clone(proxied, tmp_path, monkeypatch, large_images())
    # One call for the whole batch; no file flushed on its own.
    assert flushed == []
    assert synced_fs == [root]


def test_large_images_are_flushed_file_by_file_when_other_writes_wait(
    proxied: ProxiedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    skip_unless_direct_writes(tmp_path)
    monkeypatch.setattr(transfer_module, "OTHERS_PENDING_LIMIT", -1)
    files = large_images()
    root, flushed, synced_fs = watched_clone(proxied, tmp_path, monkeypatch, files)
    # A syncfs would wait for the others' writes too: each file of the batch is flushed
    # once, under its own name, after its rename.
    assert synced_fs == []
    assert sorted(str(Path(f).relative_to(root)) for f in flushed) == sorted(files)
