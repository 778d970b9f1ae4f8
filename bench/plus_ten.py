"""The "+10 images" column of ``bench/peers.py`` alone, with more runs: a robot that
captured ten new images syncs them, with robosync installs side by side against s5cmd.

Each tool gets its own copy of a dataset (``--count`` images of ``--size`` bytes) and
uploads it once; then, ``--runs`` times, ten new images are written into every copy, the
page cache is flushed (``sync``) and each tool syncs, in an order that rotates run by
run. This is where start-up and the first requests weigh most (a few API calls and ten
uploads), so more runs than peers.py's three are needed to see past the noise.

    python -m venv /tmp/robot && /tmp/robot/bin/pip install .
    python bench/plus_ten.py --count 2000 --size 1000000 --runs 8 /tmp/robot/bin [OTHER_BIN ...]

Each BIN_DIR is a robot install (client alone) of robosync, run against this checkout's
server. Prints min / median / max seconds per tool and of each robosync's ratio to s5cmd
(pairwise, run by run), and the CPU seconds each sync cost: the tool's process, the
store's and (for robosync) its API server's. Two cores are shared by all three, so a
sync whose processes together need more CPU than its rival's cannot be much faster.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_store, spread, timed_child, tree_cpu  # noqa: E402
from bench.peers import Dataset, Robosync, S5cmd, robot_installs  # noqa: E402


def main() -> None:
    """Upload once per tool, then time ``--runs`` syncs of ten new images each."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("bins", nargs="+", type=Path, metavar="BIN_DIR", help="robot installs")
    ap.add_argument("--count", type=int, default=2000, help="images already in the project")
    ap.add_argument("--size", type=int, default=1_000_000, help="bytes per image")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="plus-ten-", dir=a.dir))
    ds = Dataset("plus ten", a.count, a.size, 0)
    (work / "weed").mkdir()
    try:
        with bench_store(work / "weed") as s3:
            tools = robot_installs(s3, work, a.bins)
            tools.append(S5cmd(s3))
            folders = {t.name: work / f"src-{i}" for i, t in enumerate(tools)}
            ds.write(folders[tools[0].name])
            for t in tools[1:]:
                shutil.copytree(folders[tools[0].name], folders[t.name])
            times: dict[str, list[float]] = {t.name: [] for t in tools}
            # CPU seconds of each sync: the tool's process, the store, robosync's API.
            cpu: dict[str, dict[str, list[float]]] = {
                t.name: {"tool": [], "store": [], "api": []} for t in tools
            }
            try:
                for i, t in enumerate(tools):
                    t.prepare(f"t{i}")
                    t.upload(folders[t.name])
                for run in range(a.runs):
                    for t in tools[run % len(tools) :] + tools[: run % len(tools)]:
                        ds.add_ten(folders[t.name], f"run{run}")
                        subprocess.run(["sync"], check=True)
                        api = t.server.pid if isinstance(t, Robosync) and t.server else None
                        store0, api0 = tree_cpu(s3.pid or 0), tree_cpu(api) if api else 0.0
                        cmd = t.resync_command(folders[t.name])
                        wall, own = timed_child(cmd, folders[t.name], t.env)
                        times[t.name].append(wall)
                        cpu[t.name]["tool"].append(own)
                        cpu[t.name]["store"].append(tree_cpu(s3.pid or 0) - store0)
                        cpu[t.name]["api"].append(tree_cpu(api) - api0 if api else 0.0)
                    print(f"run {run}: " + ", ".join(f"{n} {v[-1]:.3f}" for n, v in times.items()))
            finally:
                for t in tools:  # stop every server started, even after a failure
                    t.finish()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peer = times["s5cmd"]
    print(f"\n+10 images onto {a.count} x {a.size} B, {a.runs} runs, min / median / max seconds")
    for name, xs in times.items():
        ratios = [x / p for x, p in zip(xs, peer, strict=True)]
        versus = "" if name == "s5cmd" else f"   / s5cmd {spread(ratios)}"
        print(f"{name:40s} {spread(xs, 3)}{versus}")
        c = cpu[name]
        total = [sum(z) for z in zip(c["tool"], c["store"], c["api"], strict=True)]
        api = "" if name == "s5cmd" else f", API {spread(c['api'])}"
        print(f"{'':40s} cpu: tool {spread(c['tool'])}, store {spread(c['store'])}{api}")
        print(f"{'':40s} cpu in all {spread(total)}")


if __name__ == "__main__":
    main()
