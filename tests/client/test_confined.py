"""Writes, renames and deletes under a project root never go through a symlink."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from robosync.client import confined
from robosync.client.confined import NotAFolder, SymlinkInPath


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """``root/`` with ``link -> outside/`` (holding ``kept.png``) and ``real/kept.png``."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (outside / "kept.png").write_bytes(b"outside")
    (root / "real" / "kept.png").write_bytes(b"inside")
    os.symlink(outside, root / "link")
    return root, outside


def test_write_refuses_a_symlinked_folder_at_any_depth(layout: tuple[Path, Path]):
    root, outside = layout
    os.symlink(outside, root / "real" / "deeper")
    for path in ("link/new.png", "link/sub/new.png", "real/deeper/new.png"):
        with pytest.raises(SymlinkInPath, match="is a symbolic link"):
            confined.write_file(root, path, confined.filler(b"x"))
    assert sorted(os.listdir(outside)) == ["kept.png"]


def test_folders_kept_open_hold_the_folder_they_opened_and_still_refuse_links(
    layout: tuple[Path, Path],
):
    root, outside = layout
    with confined.OpenFolders(root) as folders:
        confined.write_file(root, "real/a.png", confined.filler(b"a"), folders=folders)
        # A link swapped in for the folder once it is open does not redirect the next write.
        os.rename(root / "real", root / "moved")
        os.symlink(outside, root / "real")
        confined.write_file(root, "real/b.png", confined.filler(b"b"), folders=folders)
        with pytest.raises(SymlinkInPath):
            confined.write_file(root, "link/c.png", confined.filler(b"c"), folders=folders)
    assert sorted(os.listdir(outside)) == ["kept.png"]
    assert sorted(os.listdir(root / "moved")) == ["a.png", "b.png", "kept.png"]


def test_write_replaces_a_symlink_at_the_target_instead_of_writing_through_it(
    layout: tuple[Path, Path],
):
    root, outside = layout
    os.symlink(outside / "kept.png", root / "real" / "file.png")
    confined.write_file(root, "real/file.png", confined.filler(b"new"))
    assert (outside / "kept.png").read_bytes() == b"outside"
    assert not (root / "real" / "file.png").is_symlink()
    assert (root / "real" / "file.png").read_bytes() == b"new"


def test_write_makes_missing_folders_and_uses_the_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        st = confined.write_file(tmp_path, "a/b/c.png", confined.filler(b"abc"))
    finally:
        os.umask(old)
    assert (tmp_path / "a/b/c.png").read_bytes() == b"abc"
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert [p.name for p in (tmp_path / "a/b").iterdir()] == ["c.png"]  # no temp file left


def test_an_empty_folder_where_the_file_goes_gives_way_a_full_one_stays(tmp_path: Path):
    (tmp_path / "empty.png").mkdir()
    (tmp_path / "full.png").mkdir()
    (tmp_path / "full.png" / "inner.png").write_bytes(b"kept")
    confined.write_file(tmp_path, "empty.png", confined.filler(b"new"))
    assert (tmp_path / "empty.png").read_bytes() == b"new"
    with pytest.raises(IsADirectoryError):
        confined.write_file(tmp_path, "full.png", confined.filler(b"new"))
    assert (tmp_path / "full.png" / "inner.png").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.png", "full.png"]  # no temp


def test_remove_and_rename_refuse_a_symlinked_folder(layout: tuple[Path, Path]):
    root, outside = layout
    with pytest.raises(SymlinkInPath):
        confined.remove_file(root, "link/kept.png")
    with pytest.raises(SymlinkInPath):
        confined.rename_file(root, "real/kept.png", "link/moved.png")
    with pytest.raises(SymlinkInPath):
        confined.rename_file(root, "link/kept.png", "real/moved.png")
    assert sorted(os.listdir(outside)) == ["kept.png"]
    assert (root / "real" / "kept.png").read_bytes() == b"inside"
    assert confined.remove_file(root, "real/kept.png")
    assert not confined.remove_file(root, "real/kept.png")


def test_a_file_where_a_folder_should_be_is_named(layout: tuple[Path, Path]):
    root, _ = layout
    with pytest.raises(NotAFolder, match="real/kept.png is a file"):
        confined.write_file(root, "real/kept.png/x.png", confined.filler(b"x"))


def test_reads_refuse_links_and_stat_does_not_see_through_them(layout: tuple[Path, Path]):
    root, outside = layout
    os.symlink(outside / "kept.png", root / "real" / "alias.png")
    assert confined.stat_file(root, "link/kept.png") is None
    assert confined.stat_file(root, "real/alias.png") is None
    assert confined.stat_file(root, "real/kept.png") is not None
    for path in ("link/kept.png", "real/alias.png"):
        with pytest.raises(SymlinkInPath):
            confined.open_file(root, path)


def test_flushing_written_files_passes_over_what_is_gone_or_behind_a_link(
    layout: tuple[Path, Path],
):
    root, outside = layout
    written = [f"real/{i}.png" for i in range(6)] + ["sub/a.png", "sub/b.png"]
    for path in written:
        confined.write_file(root, path, confined.filler(b"x"))
    assert confined.sync_files(root, written, workers=4) == written
    # Since they were written: one deleted, a folder swapped for a link to outside.
    (root / "real" / "2.png").unlink()
    (root / "sub").rename(outside / "sub")
    os.symlink(outside / "sub", root / "sub")
    flushed = confined.sync_files(root, written, workers=4)
    assert flushed == [p for p in written if p != "real/2.png" and not p.startswith("sub/")]
    assert confined.sync_files(root, ["real/0.png", "link/kept.png"], workers=1) == ["real/0.png"]


def test_pending_writes_counts_dirty_and_writeback_pages_less_ours():
    meminfo = b"MemTotal: 1000 kB\nDirty:   300 kB\nWriteback:    20 kB\nWritebackTmp: 5 kB\n"
    assert confined._meminfo_pending(meminfo, 0) == 320 * 1024
    assert confined._meminfo_pending(meminfo, 20 * 1024) == 300 * 1024
    assert confined._meminfo_pending(meminfo, 1 << 30) == 0
    # A count it cannot read is unknown, not zero (the caller then flushes file by file).
    assert confined._meminfo_pending(b"Dirty: 300 kB\n", 0) is None
    assert confined._meminfo_pending(b"Dirty: 3 MB\nWriteback: 0 kB\n", 0) is None
    if Path("/proc/meminfo").exists():
        pending = confined.pending_writes()
        assert pending is not None and pending >= 0
