"""Start-up cost of the commands a robot runs most: a no-op ``robosync push`` and ``status``.

A robot that pushes every few seconds, or an agent's ``status`` probe, pays the
interpreter start and the imports every time; when nothing changed that is all it pays.
This script starts an embedded ``robosync-server``, makes a project of ``--files`` small
images, pushes it once, and then times, as whole processes, ``robosync push`` (nothing
to send) and ``robosync status`` (one request to the server) with this checkout and with
each ``--also BIN_DIR`` installation (a checkout's ``.venv/bin`` or a robot's venv),
alternating run by run so that all see the same machine; each pair's ratios follow.
CPU is the child's user + system time (rusage); wall is what a user waits.
Each installation is byte-compiled first, as ``pip install`` leaves it.

    python bench/startup.py --files 200 --runs 15 --also /tmp/base/.venv/bin
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

from bench.harness import compile_like_pip, robot_env, spread, timed_child  # noqa: E402
from tests.fixtures.server import ServerProcess  # noqa: E402

COMMANDS = {"no-op push": ["push"], "status": ["status"], "python -c pass": []}


def main() -> None:
    """Measure and print a table: install, command, wall and CPU seconds, ratios."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=200, help="images in the project")
    ap.add_argument("--runs", type=int, default=15, help="timed runs of each command")
    ap.add_argument("--also", type=Path, action="append", default=[], metavar="BIN_DIR")
    a = ap.parse_args()
    here = Path(sys.executable).parent
    installs = {"this checkout": here} | {install_name(d): d.resolve() for d in a.also}
    for bin_dir in installs.values():
        compile_like_pip(bin_dir)
    work = Path(tempfile.mkdtemp(prefix="robosync-startup-"))
    srv = ServerProcess(work / "server", {}).start()
    try:
        env = robot_env(srv, work / "cfg")
        folders: dict[str, Path] = {}
        for i, (name, bin_dir) in enumerate(installs.items()):
            folder = work / f"p{i}"
            folder.mkdir()
            for n in range(a.files):
                (folder / f"img{n:05}.jpg").write_bytes(os.urandom(2048))
            robosync = str(bin_dir / "robosync")
            subprocess.run([robosync, "init", f"p{i}", str(folder)], env=env, check=True)
            subprocess.run([robosync, "push"], cwd=folder, env=env, check=True)
            folders[name] = folder
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(a.runs + 1):  # the first round warms the page cache and is dropped
            for name, bin_dir in installs.items():
                for label, args in COMMANDS.items():
                    cmd = (
                        [str(bin_dir / "robosync"), *args]
                        if args
                        else [str(bin_dir / "python"), "-c", "pass"]
                    )
                    results.setdefault((name, label), []).append(
                        timed_child(cmd, folders[name], env)
                    )
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{a.files} images, {a.runs} runs each, min / median / max\n")
    print("| install | command | wall s | CPU s |")
    print("|---|---|---|---|")
    for (name, label), runs in results.items():
        runs = runs[1:]
        print(
            f"| {name} | {label} | {spread([w for w, _ in runs], 3)} | "
            f"{spread([c for _, c in runs], 3)} |"
        )
    names = list(installs)
    for i, first in enumerate(names):
        for other in names[i + 1 :]:
            for label in COMMANDS:
                ours, theirs = results[(first, label)][1:], results[(other, label)][1:]
                wall = [x[0] / y[0] for x, y in zip(ours, theirs, strict=True)]
                cpu = [x[1] / y[1] for x, y in zip(ours, theirs, strict=True)]
                print(
                    f"| {first} / {other} | {label} | {spread(wall)} (ratio) | "
                    f"{spread(cpu)} (ratio) |"
                )


def install_name(bin_dir: Path) -> str:
    """What to call an installation: its venv's folder (``/tmp/robot/bin``: ``robot``), or
    the checkout holding it (``TREE/.venv/bin``: ``TREE``)."""
    venv = bin_dir.resolve().parent
    return venv.parent.name if venv.name == ".venv" else venv.name


if __name__ == "__main__":
    main()
