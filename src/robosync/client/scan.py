"""Walk a project folder and bring the index up to date, hashing only what changed.

A file whose ``(size, mtime_ns, inode)`` equals its index row keeps its digest;
every other file is hashed. Symbolic links are never followed; a file the index
knows that now sits behind one (or became one) keeps its row: not seeing it is
not a deletion. Files of :data:`POOL_FROM_BYTES` or more are hashed on a thread pool:
``hashlib`` releases the GIL on buffers over 2 KiB and files are read 1 MiB at a
time, so threads use every core without the cost of shipping results between
processes. Smaller files are hashed by the walking thread itself: their hash is
too short to share the GIL, and two threads took 1.5-3x the time of one for
32 KiB images (docs/PERFORMANCE.md).
At most ``2 x workers`` files are in flight and rows are written in batches,
so memory stays flat however many files change. A file that changes, vanishes
or cannot be read while it is hashed is reported (``ScanReport.left_out``)
and indexed as unhashed: the push leaves it out and the next scan hashes it.

A ``landing`` file (written by a download that stopped before flushing it) is
always hashed: with the expected content it is ``local``; otherwise (torn by
a crash) it is reported in ``left_out`` and stays ``landing``: never a local
change, so never committed, and the next pull writes it again. One that is
missing becomes ``remote`` (the next pull brings it), never a deletion.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from robosync.client.index import DIRNAME, LANDING, LOCAL, REMOTE, FileRow, Index
from robosync.client.leftout import (
    FileTrouble,
    LeftOut,
    LeftOutFiles,
    Stamp,
    file_trouble,
    open_as_hashed,
    still_as_hashed,
)
from robosync.digest import digest_stream
from robosync.paths import normalize_path, path_problem
from robosync.values import FrozenValue, Value

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

TEMP_PREFIX = ".robosync-tmp-"
_BATCH = 500
# Files at least this large are hashed on the pool; smaller ones by the walking thread.
POOL_FROM_BYTES = 256 * 1024
TORN = (
    "was being downloaded when robosync stopped and is not the content it was given "
    "(a crash may have torn it); it is not pushed, and `robosync pull` writes it again"
)


@dataclass(eq=False, repr=False)
class ScanReport(Value):
    """What a scan saw."""

    files: int = 0
    hashed: int = 0
    hashed_bytes: int = 0
    removed: int = 0
    # Entries not synced, with why: invalid names, symbolic links, NFC twins,
    # unreadable folders. One list, so every command reports them the same way.
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    # Changed, vanished or unreadable while hashed: not indexed now, hashed next time.
    left_out: list[LeftOut] = field(default_factory=list)
    # Symbolic links met (never followed): what sits behind one is not seen, and
    # must not count as deleted.
    symlinks: list[str] = field(default_factory=list)


@dataclass(frozen=True, eq=False, repr=False)
class _Seen(FrozenValue):
    path: str  # project path (NFC)
    disk: str  # absolute path as it is on disk
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int = 0


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of robosync's temporary files."""
    return name.startswith(TEMP_PREFIX)


SYMLINK_SKIPPED = "a symbolic link (robosync syncs regular files only; links are not followed)"


def disk_path(root: Path, path: str) -> Path:
    """Where project ``path`` (NFC) is on disk: its own name, or a name that normalises to it.

    macOS (and files copied from it) store names in NFD; the project path is
    the NFC form, so the file must be opened by the name it really has.
    """
    direct = root / path
    if os.path.lexists(direct):
        return direct
    here = root
    for segment in path.split("/"):
        candidate = here / segment
        if not os.path.lexists(candidate):
            try:
                names = os.listdir(here)
            except OSError:
                return direct
            match = next((n for n in names if normalize_path(n) == segment), None)
            if match is None:
                return direct
            candidate = here / match
        here = candidate
    return here


def disk_name(root: Path, path: str) -> str:
    """:func:`disk_path` relative to ``root``: the name to hand to :mod:`confined`."""
    return disk_path(root, path).relative_to(root).as_posix()


def walk(root: Path, report: ScanReport) -> Iterator[_Seen]:
    """Regular files under ``root`` (not ``.robosync/`` nor temp files), stat'ed."""
    stack = [(str(root), "")]
    seen_names: dict[str, str] = {}  # NFC project path -> name on disk
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
            if stat_mod.S_ISLNK(st.st_mode):
                # Reported once, and remembered: what sits behind it is unseen,
                # never deleted.
                report.invalid.append((rel, SYMLINK_SKIPPED))
                report.symlinks.append(rel)
                continue
            twin = seen_names.get(rel)
            if twin is not None:
                report.invalid.append(
                    (
                        entry.path[len(str(root)) + 1 :],
                        f"same name as {twin!r} once normalised to Unicode NFC; rename one",
                    )
                )
                continue
            seen_names[rel] = entry.path[len(str(root)) + 1 :]
            if stat_mod.S_ISDIR(st.st_mode):
                stack.append((entry.path, rel))
            elif stat_mod.S_ISREG(st.st_mode):
                problem = path_problem(rel)
                if problem is not None:
                    report.invalid.append((rel, problem))
                    continue
                yield _Seen(rel, entry.path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def behind_link(path: str, links: set[str]) -> bool:
    """Whether ``path`` is one of ``links`` or inside one (so a scan cannot see it)."""
    if not links:
        return False
    parts = path.split("/")
    return any("/".join(parts[:i]) in links for i in range(1, len(parts) + 1))


def _hash(seen: _Seen) -> FileRow | LeftOut:
    stamp = Stamp(seen.size, seen.mtime_ns, seen.inode)
    try:
        with file_trouble("hashed"):
            with open_as_hashed(seen.disk, stamp, "hashed") as f:
                d = digest_stream(f)
            # A file written during the hash would be indexed with a digest of
            # bytes it no longer has: it is left out and hashed again next time.
            still_as_hashed(Path(seen.disk), stamp, "hashed")
    except FileTrouble as e:
        return LeftOut(seen.path, e.reason)
    return FileRow(
        seen.path,
        d.size,
        seen.mtime_ns,
        seen.inode,
        d.digest,
        b"".join(b.sha256 for b in d.blocks),
        LOCAL,
    )


def _hash_pool(workers: int) -> ThreadPoolExecutor:
    """The threads that hash large files, made for the first one (a scan that hashes
    none, as a push with nothing to send, does not load ``concurrent.futures``)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="robosync-hash")


def _first_done(
    futures: set[Future[FileRow | LeftOut]],
) -> tuple[set[Future[FileRow | LeftOut]], set[Future[FileRow | LeftOut]]]:
    """``(done, not done)`` of ``futures`` once at least one is done."""
    from concurrent.futures import FIRST_COMPLETED, wait

    done, pending = wait(futures, return_when=FIRST_COMPLETED)
    return done, pending


def scan(
    index: Index,
    *,
    workers: int | None = None,
    on_hashed: Callable[[int], None] | None = None,
    settle_seconds: float = 0.0,
) -> ScanReport:
    """Bring ``index`` in line with the folder; return what was seen and hashed.

    ``settle_seconds``: a new or changed file written (or renamed into place:
    its ctime moves too) less than that ago may still be being written; it
    is not hashed now but reported in ``left_out``, so the next scan, once
    it has settled, hashes it once.
    """
    root = index.root
    young = time.time_ns() - int(settle_seconds * 1e9) if settle_seconds > 0 else None
    report = ScanReport()
    known = {
        r.path: (r.size, r.mtime_ns, r.inode, r.state, r.blocks is not None)
        for r in index.file_rows()
    }
    landing = {r.path: r for r in index.paths_in_state(LANDING)}
    seen_paths: set[str] = set()
    pending: list[FileRow] = []
    workers = workers or max(1, os.cpu_count() or 1)

    def flush(force: bool = False) -> None:
        if pending and (force or len(pending) >= _BATCH):
            with index.transaction():
                index.put_files(pending)
            pending.clear()

    def take(row: FileRow | LeftOut) -> None:
        if isinstance(row, LeftOut):
            report.left_out.append(row)
            return
        expected = landing.get(row.path)
        if expected is not None and expected.entry != row.entry:
            # Stays landing: never a local change, written again by a pull.
            report.left_out.append(LeftOut(row.path, TORN))
            return
        pending.append(row)
        report.hashed += 1
        report.hashed_bytes += row.size
        if on_hashed:
            on_hashed(row.size)

    def collect(done: set[Future[FileRow | LeftOut]]) -> None:
        for fut in done:
            take(fut.result())
        flush()

    in_flight: set[Future[FileRow | LeftOut]] = set()
    pool: ThreadPoolExecutor | None = None
    try:
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
            if young is not None and max(seen.mtime_ns, seen.ctime_ns) > young:
                report.left_out.append(
                    LeftOut(
                        seen.path, f"written less than {settle_seconds:g} s ago (may be unfinished)"
                    )
                )
                continue
            if seen.size < POOL_FROM_BYTES:
                take(_hash(seen))
                flush()
                continue
            if pool is None:
                pool = _hash_pool(workers)
            in_flight.add(pool.submit(_hash, seen))
            if len(in_flight) >= 2 * workers:
                done, in_flight = _first_done(in_flight)
                collect(done)
        while in_flight:
            done, in_flight = _first_done(in_flight)
            collect(done)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    flush(force=True)
    unsettled = LeftOutFiles(report.left_out).still_on_disk()
    if unsettled:
        with index.transaction():
            index.mark_unhashed(unsettled)

    missing = [r for p, r in landing.items() if p not in seen_paths]
    if missing:
        with index.transaction():
            index.put_files(FileRow(r.path, r.size, 0, 0, r.digest, None, REMOTE) for r in missing)

    links = set(report.symlinks)
    gone = [
        p
        for p, v in known.items()
        if p not in seen_paths and v[3] == LOCAL and not behind_link(p, links)
    ]
    report.removed = len(gone)
    if gone:
        with index.transaction():
            index.remove_files(gone)
    return report
