"""Scanning a folder into the index: digests, change detection, deletions, evictions."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from robosync.client.index import EVICTED, UNHASHED, Index
from robosync.client.merge import Entry
from robosync.client.scan import POOL_FROM_BYTES, TEMP_PREFIX, scan
from robosync.digest import digest_bytes


@pytest.fixture
def index(tmp_path: Path):
    idx = Index(tmp_path)
    yield idx
    idx.close()


def write(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def test_scan_records_the_content_address_of_every_file(index: Index):
    files = {"a.png": b"a" * 10, "cam/b.png": os.urandom(9 * 1024 * 1024), "empty": b""}
    for rel, data in files.items():
        write(index.root, rel, data)
    report = scan(index, workers=2)
    assert report.files == 3 and report.hashed == 3
    rows = {r.path: r for r in index.file_rows()}
    for rel, data in files.items():
        d = digest_bytes(data)
        assert (rows[rel].digest, rows[rel].size) == (d.digest, d.size)
        assert rows[rel].block_hashes() == [b.sha256_hex for b in d.blocks]


def test_unchanged_files_are_not_hashed_again(index: Index):
    write(index.root, "a.png", b"one")
    write(index.root, "b.png", b"two")
    scan(index)
    again = scan(index)
    assert again.hashed == 0 and again.files == 2


def test_a_touched_or_rewritten_file_is_hashed_again(index: Index):
    write(index.root, "a.png", b"one")
    write(index.root, "b.png", b"two")
    scan(index)
    st = os.stat(index.root / "a.png")
    os.utime(index.root / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    write(index.root, "b.png", b"TWO")
    report = scan(index)
    assert report.hashed == 2
    assert index.file("b.png").digest == digest_bytes(b"TWO").digest


def test_robosync_folder_and_temp_files_are_skipped(index: Index):
    write(index.root, "a.png", b"x")
    write(index.root, f"cam/{TEMP_PREFIX}abc", b"half written")
    scan(index)
    assert [r.path for r in index.file_rows()] == ["a.png"]


def test_names_are_nfc_normalised(index: Index):
    nfd = unicodedata.normalize("NFD", "café.png")
    write(index.root, nfd, b"x")
    scan(index)
    assert [r.path for r in index.file_rows()] == [unicodedata.normalize("NFC", "café.png")]


def test_invalid_names_are_reported_not_synced(index: Index):
    write(index.root, "bad\\name.png", b"x")
    write(index.root, "ok.png", b"y")
    report = scan(index)
    assert [r.path for r in index.file_rows()] == ["ok.png"]
    assert report.invalid == [("bad\\name.png", "contains a backslash")]


def test_delta_against_base_reports_added_modified_deleted(index: Index):
    for rel in ("keep", "change", "gone"):
        write(index.root, rel, rel.encode())
    scan(index)
    with index.transaction():
        index.apply_to_base((r.path, r.entry) for r in index.file_rows())
    write(index.root, "change", b"changed")
    os.unlink(index.root / "gone")
    write(index.root, "new", b"new")
    scan(index)
    delta = index.local_delta()
    assert list(delta.added) == ["new"]
    assert list(delta.modified) == ["change"]
    assert delta.deleted == ["gone"]


def test_evicted_files_are_not_deletions(index: Index):
    write(index.root, "a.png", b"x")
    scan(index)
    row = index.file("a.png")
    with index.transaction():
        index.apply_to_base([("a.png", row.entry)])
        index.set_remote_only("a.png", Entry(row.digest, row.size), EVICTED)
    os.unlink(index.root / "a.png")
    scan(index)
    assert not index.local_delta()
    assert index.file("a.png").state == EVICTED


def test_scan_of_many_files_writes_them_all(index: Index):
    files = {f"d{i % 7}/{i}.png": str(i).encode() for i in range(1200)}
    # Files from POOL_FROM_BYTES up are hashed on the pool, smaller ones inline: both kinds.
    files.update({f"big/{i}.png": os.urandom(POOL_FROM_BYTES + i - 1) for i in range(6)})
    for rel, data in files.items():
        write(index.root, rel, data)
    report = scan(index, workers=4)
    assert report.hashed == len(files)
    assert {r.path: r.digest for r in index.file_rows()} == {
        rel: digest_bytes(data).digest for rel, data in files.items()
    }


@pytest.mark.parametrize("size", [10, POOL_FROM_BYTES], ids=["inline", "on-the-pool"])
def test_a_file_written_while_it_is_hashed_is_left_out_then_hashed_next_scan(
    index: Index, monkeypatch: pytest.MonkeyPatch, size: int
):
    import robosync.client.scan as scan_module

    first_half = b"first half".ljust(size, b".")
    write(index.root, "steady.png", b"steady")
    write(index.root, "growing.png", first_half)
    real = scan_module.digest_stream

    def digest_then_append(stream):  # type: ignore[no-untyped-def]
        d = real(stream)
        if d.digest == digest_bytes(first_half).digest:
            with open(index.root / "growing.png", "ab") as f:
                f.write(b" and the rest")
        return d

    monkeypatch.setattr(scan_module, "digest_stream", digest_then_append)
    report = scan(index)
    assert [(x.path, x.reason) for x in report.left_out] == [
        ("growing.png", "changed while it was hashed (size or mtime moved)")
    ]
    # indexed as of unknown content: no digest a merge could take for the base's
    assert index.file("growing.png").digest == UNHASHED
    assert index.file("steady.png") is not None
    monkeypatch.setattr(scan_module, "digest_stream", real)
    again = scan(index)
    assert not again.left_out
    assert index.file("growing.png").digest == digest_bytes(first_half + b" and the rest").digest


def test_a_file_replaced_by_a_fifo_after_its_stat_is_left_out_without_blocking(
    index: Index, monkeypatch: pytest.MonkeyPatch
):
    import robosync.client.scan as scan_module

    write(index.root, "ok.png", b"fine")
    write(index.root, "cam/pipe.png", b"soon a FIFO")
    real = scan_module.walk

    def walk_then_swap(root, report):  # type: ignore[no-untyped-def]
        for seen in real(root, report):
            if seen.path == "cam/pipe.png":
                os.unlink(seen.disk)
                os.mkfifo(seen.disk)  # opening it to read would block forever
            yield seen

    monkeypatch.setattr(scan_module, "walk", walk_then_swap)
    report = scan(index)
    assert [(x.path, x.reason) for x in report.left_out] == [
        ("cam/pipe.png", "cannot be read (not a regular file any more)")
    ]
    assert index.file("ok.png") is not None
    assert index.file("cam/pipe.png").digest == UNHASHED
