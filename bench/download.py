"""The "download" column of ``bench/peers.py`` alone, with more runs: a robot fetches a
whole project, with robosync installs side by side against rclone and s5cmd.

Each tool uploads one copy of a dataset (``--count`` images of ``--size`` bytes) once;
then, ``--runs`` times, every tool downloads it into a new folder, in an order that
rotates run by run. Between downloads the file system is synced, so no tool starts while
another's writes are still going out. The folders are kept until the end: ext4 without a
journal (as on this VM) skips inodes freed in the last minute when it allocates one,
checking each in turn, so files created right after thousands were deleted cost several
times the CPU (``recently_deleted`` in ``perf``), and a bench that deleted each download
before the next would time that, not the tools. Disk needed: ``runs x tools`` copies.

``--others-pending MB`` leaves that many megabytes of another program's writes waiting
for the disk just before each download (a file written and not synced, as an object
store on the same disk that has just taken an upload leaves them; ``peers.py`` times its
download column in that state): a download that flushes its files then either waits for
those writes too or flushes file by file.

    python -m venv /tmp/robot && /tmp/robot/bin/pip install .
    python bench/download.py --count 10000 --size 32768 --runs 6 /tmp/robot/bin [OTHER_BIN ...]
    python bench/download.py --count 150 --size 8388608 --duplicates 30 ...   # dataset A

Each BIN_DIR is a robot install (client alone) of robosync, run against this checkout's
server. Prints min / median / max seconds and client CPU seconds (user + system) per
tool, and each robosync's ratio to the best peer (pairwise, run by run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_store, spread, timed_child, tree_cpu  # noqa: E402
from bench.peers import Dataset, Rclone, Robosync, S5cmd, robot_installs  # noqa: E402


def leave_pending(path: Path, megabytes: int) -> None:
    """Write ``megabytes`` MB to ``path`` (replacing it) and leave them unsynced."""
    path.unlink(missing_ok=True)
    chunk = os.urandom(1 << 20)
    with path.open("wb") as f:
        for _ in range(megabytes):
            f.write(chunk)


def main() -> None:
    """Upload once per tool, then time ``--runs`` downloads of each."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("bins", nargs="+", type=Path, metavar="BIN_DIR", help="robot installs")
    ap.add_argument("--count", type=int, default=10_000, help="images in the project")
    ap.add_argument("--size", type=int, default=32 * 1024, help="bytes per image")
    ap.add_argument("--duplicates", type=int, default=0, help="images that copy others")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    ap.add_argument(
        "--others-pending",
        type=int,
        default=0,
        metavar="MB",
        help="megabytes of other writes left waiting for the disk before each download",
    )
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="download-", dir=a.dir))
    ds = Dataset("download", a.count, a.size, a.duplicates)
    (work / "weed").mkdir()
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    stores: dict[str, list[float]] = {}
    apis: dict[str, list[float]] = {}
    try:
        with bench_store(work / "weed") as s3:
            tools = robot_installs(s3, work, a.bins)
            tools += [Rclone(s3), S5cmd(s3)]
            src = work / "src"
            ds.write(src)
            walls = {t.name: [] for t in tools}
            cpus = {t.name: [] for t in tools}
            stores = {t.name: [] for t in tools}
            apis = {t.name: [] for t in tools}
            try:
                for i, t in enumerate(tools):
                    t.prepare(f"t{i}")
                    copy = work / f"src-{i}"
                    shutil.copytree(src, copy)
                    t.upload(copy)
                for run in range(a.runs):
                    for t in tools[run % len(tools) :] + tools[: run % len(tools)]:
                        dst = work / f"dst-{run}-{t.name.replace('/', '_')}"
                        if a.others_pending:
                            leave_pending(work / "others.bin", a.others_pending)
                        api = t.server.pid if isinstance(t, Robosync) and t.server else None
                        store0, api0 = tree_cpu(s3.pid or 0), tree_cpu(api) if api else 0.0
                        wall, cpu = timed_child(t.download_command(dst), work, t.env)
                        stores[t.name].append(tree_cpu(s3.pid or 0) - store0)
                        apis[t.name].append(tree_cpu(api) - api0 if api else 0.0)
                        walls[t.name].append(wall)
                        cpus[t.name].append(cpu)
                        if sum(1 for _ in dst.iterdir()) < a.count:
                            raise RuntimeError(f"{t.name} left files out of {dst}")
                        subprocess.run(["sync"], check=True)
                    print(f"run {run}: " + ", ".join(f"{n} {v[-1]:.2f}" for n, v in walls.items()))
            finally:
                for t in tools:  # stop every server started, even after a failure
                    t.finish()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ndownload of {a.count} x {a.size} B, {a.runs} runs, min / median / max")
    peers = ("rclone", "s5cmd")
    best = [min(walls[p][i] for p in peers) for i in range(a.runs)]
    for name, xs in walls.items():
        ratios = [x / b for x, b in zip(xs, best, strict=True)]
        versus = "" if name in peers else f"   / best peer {spread(ratios)}"
        print(f"{name:40s} wall {spread(xs)}  cpu {spread(cpus[name])}{versus}")
        extra = "" if name in peers else f"  robosync's API cpu {spread(apis[name])}"
        print(f"{'':40s} store cpu {spread(stores[name])}{extra}")


if __name__ == "__main__":
    main()
