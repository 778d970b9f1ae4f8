"""Writing many downloaded files: through the page cache or past it (``O_DIRECT``).

Writes ``--files`` new files of ``--size`` bytes with 16 threads, hashing each buffer
as a download does, in three ways, rotated round by round:

- ``direct``: what robosync does for files of 256 KiB or more (``client/directio.py``),
  then one ``fdatasync`` per file;
- ``buffered``: ordinary writes, then one ``fdatasync`` per file (robosync before);
- ``nosync``: ordinary writes and no flush at all (what rclone and s5cmd do).

Prints wall seconds and the process's system CPU seconds, min / median / max. Run::

    python bench/direct_write.py [--files 2000] [--size 1000000] [--rounds 3] [--dir DIR]

``--dir`` must be on the file system to measure (default: a temp folder under the
current one).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import spread  # noqa: E402

from robosync.client import directio  # noqa: E402

THREADS = 16
CHUNK = 1024 * 1024
MODES = ("direct", "buffered", "nosync")


def write_all(folder: Path, mode: str, files: int, size: int) -> None:
    """Write the files of one round in ``mode`` (and flush them unless ``nosync``)."""
    payload = os.urandom(CHUNK)

    def one_thread(first: int) -> None:
        buf = directio.aligned_buffer(CHUNK)
        buf[:] = payload
        for i in range(first, files, THREADS):
            fd = os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            direct = mode == "direct" and directio.try_direct(fd)
            digest, left = hashlib.sha256(), size
            while left:
                chunk = buf[: min(CHUNK, left)]
                digest.update(chunk)
                if direct:
                    direct = directio.write_direct(fd, chunk)
                else:
                    os.write(fd, chunk)
                left -= len(chunk)
            os.close(fd)

    def flush(i: int) -> None:
        fd = os.open(folder / f"f{i}", os.O_RDONLY)
        os.fdatasync(fd)
        os.close(fd)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one_thread, range(THREADS)))
        if mode != "nosync":
            list(pool.map(flush, range(files)))


def main() -> None:
    """Run the rounds and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=1_000_000, help="bytes per file")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path.cwd())
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="direct-write-", dir=args.dir))
    times: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    try:
        for r in range(args.rounds):
            for mode in MODES[r % 3 :] + MODES[: r % 3]:
                folder = work / f"{mode}-{r}"
                folder.mkdir()
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                t = time.perf_counter()
                write_all(folder, mode, args.files, args.size)
                wall = time.perf_counter() - t
                sys_cpu = resource.getrusage(resource.RUSAGE_SELF).ru_stime - r0.ru_stime
                times[mode].append((wall, sys_cpu))
                print(f"round {r} {mode}: wall {wall:.2f} s, system CPU {sys_cpu:.2f} s")
    finally:
        shutil.rmtree(work)
    print(f"\n{args.files} files of {args.size} bytes, {args.rounds} rounds (min / median / max)\n")
    print("| mode | wall s | system CPU s |\n|---|---|---|")
    for mode, got in times.items():
        print(f"| {mode} | {spread([w for w, _ in got])} | {spread([c for _, c in got])} |")


if __name__ == "__main__":
    main()
