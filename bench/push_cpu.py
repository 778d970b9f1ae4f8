"""CPU seconds per file of a push and a clone of many small files: client, API server, store.

Wall time on a shared 2-core machine says more about the neighbours than about
robosync; the CPU each process burns per file does not, and on 2 cores it is
what bounds the wall time of a many-small-files push. This script runs the
real ``robosync push`` and ``robosync clone`` against a real server (SQLite +
SeaweedFS) and reads the CPU of the client (rusage of the child), the API
server and the SeaweedFS process (``/proc/PID/stat``).

``--also BIN_DIR`` runs another installation (e.g. an earlier commit checked
out with its own venv) in the same run, alternating, so before and after are
measured side by side::

    git worktree add /tmp/base <commit> && python -m venv --system-site-packages \\
        /tmp/base/.venv && /tmp/base/.venv/bin/pip install --no-deps -e /tmp/base
    python bench/push_cpu.py --files 2000 --size 32768 --repeat 3 --also /tmp/base/.venv/bin
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

from bench.harness import bench_store, robot_env, spread, timed_child  # noqa: E402
from tests.fixtures.seaweedfs import SeaweedFS  # noqa: E402
from tests.fixtures.server import ServerProcess  # noqa: E402

FIGURES = ("wall s", "client CPU ms/file", "server CPU ms/file", "store CPU ms/file")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    cmd: list[str], cwd: Path, env: dict[str, str], server: int, store: int, files: int
) -> tuple[float, ...]:
    """Run ``cmd``: wall seconds and the CPU milliseconds per file of each process."""
    s0, w0 = process_cpu(server), process_cpu(store)
    wall, client = timed_child(cmd, cwd, env)
    per_file = 1000 / files
    return (
        wall,
        client * per_file,
        (process_cpu(server) - s0) * per_file,
        (process_cpu(store) - w0) * per_file,
    )


def one_run(
    s3: SeaweedFS, work: Path, bin_dir: str, src: Path, files: int
) -> dict[str, tuple[float, ...]]:
    """Push then clone ``src`` with the robosync of ``bin_dir`` on a fresh server and bucket."""
    server_env = s3.server_env()
    run_dir = Path(tempfile.mkdtemp(dir=work))
    srv = ServerProcess(run_dir / "server", server_env, [f"{bin_dir}robosync-server"]).start()
    try:
        env = robot_env(srv, run_dir / "cfg")
        project = run_dir / "p"
        shutil.copytree(src, project)
        exe = f"{bin_dir}robosync"
        subprocess.run([exe, "init", "p", str(project)], env=env, check=True, capture_output=True)
        assert s3.pid is not None
        return {
            "push": measure([exe, "push"], project, env, srv.pid, s3.pid, files),
            "clone": measure(
                [exe, "clone", "p", str(run_dir / "c")], run_dir, env, srv.pid, s3.pid, files
            ),
        }
    finally:
        srv.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    """Measure and print one table row per installation, operation and figure."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=32 * 1024, help="bytes per file")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--also", type=Path, action="append", default=[], metavar="BIN_DIR")
    a = ap.parse_args()
    installs = {"robosync": ""} | {
        f"robosync@{d.resolve().parent.parent.name}": f"{d.resolve()}/" for d in a.also
    }
    work = Path(tempfile.mkdtemp(prefix="robosync-push-cpu-"))
    src = work / "src"
    src.mkdir()
    for i in range(a.files):
        (src / f"img{i:05}.jpg").write_bytes(os.urandom(a.size))
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    (work / "weed").mkdir()
    with bench_store(work / "weed") as s3:
        for rep in range(a.repeat):
            for name, bin_dir in installs.items():
                for op, figures in one_run(s3, work, bin_dir, src, a.files).items():
                    results.setdefault((name, op), []).append(figures)
                    print(f"rep {rep} {name} {op}: {figures}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\n{a.files} files of {a.size} bytes, {a.repeat} runs (min / median / max)\n")
    print("| install | operation | " + " | ".join(FIGURES) + " |")
    print("|---|---|" + "---|" * len(FIGURES))
    for (name, op), runs in results.items():
        cells = [spread([r[i] for r in runs]) for i in range(len(FIGURES))]
        print(f"| {name} | {op} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
