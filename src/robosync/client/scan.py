"""Walk a project folder and bring the index up to date, hashing only what changed.

A file whose ``(size, mtime_ns, inode)`` equals its index row keeps its digest;
every other file is hashed. Hashing runs on a thread pool: ``hashlib`` releases
the GIL on buffers over 2 KiB and files are read 1 MiB at a time, so threads
use every core without the cost of shipping results between processes.
At most ``2 x workers`` files are in flight and rows are written in batches,
so memory stays flat however many files change.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from robosync.client.index import DIRNAME, LOCAL, FileRow, Index
from robosync.digest import digest_file
from robosync.paths import normalize_path, path_problem

TEMP_PREFIX = ".robosync-tmp-"
_BATCH = 500


@dataclass
class ScanReport:
    """What a scan saw."""

    files: int = 0
    hashed: int = 0
    hashed_bytes: int = 0
    removed: int = 0
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


@dataclass(frozen=True)
class _Seen:
    path: str  # project path (NFC)
    disk: str  # absolute path as it is on disk
    size: int
    mtime_ns: int
    inode: int


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of robosync's temporary files."""
    return name.startswith(TEMP_PREFIX)


def walk(root: Path, report: ScanReport) -> Iterator[_Seen]:
    """Regular files under ``root`` (not ``.robosync/`` nor temp files), stat'ed."""
    stack = [(str(root), "")]
    while stack:
        disk_dir, rel_dir = stack.pop()
        try:
            entries = list(os.scandir(disk_dir))
        except OSError as e:
            report.invalid.append((rel_dir or ".", f"cannot read folder: {e.strerror}"))
            continue
        for entry in entries:
            name = normalize_path(entry.name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not rel_dir and name == DIRNAME:
                continue
            if is_temp_name(name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished while walking
            if stat_mod.S_ISDIR(st.st_mode):
                stack.append((entry.path, rel))
            elif stat_mod.S_ISREG(st.st_mode):
                problem = path_problem(rel)
                if problem is not None:
                    report.invalid.append((rel, problem))
                    continue
                yield _Seen(rel, entry.path, st.st_size, st.st_mtime_ns, st.st_ino)


def _hash(seen: _Seen) -> FileRow:
    d = digest_file(seen.disk)
    # Re-stat after hashing: a file written during the hash gets a new mtime and
    # will be hashed again next time instead of keeping a stale digest.
    st = os.stat(seen.disk)
    mtime = st.st_mtime_ns if st.st_size == d.size else -1
    return FileRow(
        seen.path,
        d.size,
        mtime,
        st.st_ino,
        d.digest,
        b"".join(b.sha256 for b in d.blocks),
        LOCAL,
    )


def scan(
    index: Index,
    *,
    workers: int | None = None,
    on_hashed: Callable[[int], None] | None = None,
) -> ScanReport:
    """Bring ``index`` in line with the folder; return what was seen and hashed."""
    root = index.root
    report = ScanReport()
    known = {
        r.path: (r.size, r.mtime_ns, r.inode, r.state, r.blocks is not None)
        for r in index.file_rows()
    }
    seen_paths: set[str] = set()
    pending: list[FileRow] = []
    workers = workers or max(1, os.cpu_count() or 1)

    def flush(force: bool = False) -> None:
        if pending and (force or len(pending) >= _BATCH):
            with index.transaction():
                index.put_files(pending)
            pending.clear()

    def collect(done: set[Future[FileRow]]) -> None:
        for fut in done:
            try:
                row = fut.result()
            except FileNotFoundError:
                continue  # deleted while hashing: it is simply not there
            pending.append(row)
            report.hashed += 1
            report.hashed_bytes += row.size
            if on_hashed:
                on_hashed(row.size)
        flush()

    in_flight: set[Future[FileRow]] = set()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="robosync-hash") as pool:
        for seen in walk(root, report):
            report.files += 1
            seen_paths.add(seen.path)
            old = known.get(seen.path)
            if (
                old is not None
                and old[3] == LOCAL
                and old[4]
                and old[:3] == (seen.size, seen.mtime_ns, seen.inode)
            ):
                continue
            in_flight.add(pool.submit(_hash, seen))
            if len(in_flight) >= 2 * workers:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                collect(done)
        while in_flight:
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            collect(done)
    flush(force=True)

    gone = [p for p, v in known.items() if p not in seen_paths and v[3] == LOCAL]
    report.removed = len(gone)
    if gone:
        with index.transaction():
            index.remove_files(gone)
    return report
