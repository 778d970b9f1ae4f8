"""Cost of writing a file the symlink-safe way, next to the former plain way.

``confined.write_file`` (folders opened one by one with ``O_NOFOLLOW``,
temp file ``O_EXCL | O_NOFOLLOW``, rename by folder descriptor) against the
former ``mkstemp`` + ``os.replace`` by path, both with ``fdatasync``, for N
files of 4 KiB three folders deep. Prints microseconds per file
(min/median/max over the rounds) and the ratio of the medians. Run::

    python bench/confined_write.py [--files 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from robosync.client import confined

DATA = os.urandom(4096)


def plain_write(root: Path, rel: str) -> None:
    """The former download write: mkstemp beside the target, fdatasync, replace by path."""
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".robosync-tmp-", dir=dest.parent)
    try:
        os.write(fd, DATA)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    os.stat(dest)


def confined_write(root: Path, rel: str) -> None:
    """The current download write."""
    confined.write_file(root, rel, lambda fd: os.write(fd, DATA) and None, durable=False)


def per_file_us(write: Callable[[Path, str], None], base: Path, files: int) -> float:
    """Microseconds per file for ``files`` writes into a fresh folder."""
    root = base / "root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    start = time.perf_counter()
    for i in range(files):
        write(root, f"a/b/c/{i:06d}.png")
    return (time.perf_counter() - start) / files * 1e6


def main() -> None:
    """Run the rounds and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    results: dict[str, list[float]] = {"plain": [], "confined": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            results["plain"].append(per_file_us(plain_write, Path(tmp), args.files))
            results["confined"].append(per_file_us(confined_write, Path(tmp), args.files))
    print(f"{'write':10} {'min us':>8} {'median':>8} {'max':>8}")
    for name, v in results.items():
        print(f"{name:10} {min(v):8.0f} {statistics.median(v):8.0f} {max(v):8.0f}")
    ratio = statistics.median(results["confined"]) / statistics.median(results["plain"])
    print(f"confined / plain (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
