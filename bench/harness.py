"""What the bench scripts share: a robot's environment, timed child processes, spreads."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fixtures.seaweedfs import SeaweedFS
    from tests.fixtures.server import ServerProcess

# Volumes of 1 GiB: with the tests' 64 MB, SeaweedFS added seven volumes every few
# hundred MB written, and a sync that landed on that moment waited up to ~1 s: the
# store's stall, timed as the tool's. The count is set, not derived from the free
# disk: every new bucket takes seven volumes at once, and at 1 GiB the derived count
# ran out ten buckets into peers.py. Volumes are not preallocated: an empty one
# costs a few files.
BENCH_VOLUME_MB = 1024
BENCH_VOLUMES = 3000


def bench_store(data_dir: Path) -> SeaweedFS:
    """A SeaweedFS in ``data_dir`` for timing tools against (not yet started)."""
    from tests.fixtures.seaweedfs import SeaweedFS

    return SeaweedFS(data_dir, volume_size_limit_mb=BENCH_VOLUME_MB, volume_max=BENCH_VOLUMES)


def robot_env(server: ServerProcess, config_dir: Path) -> dict[str, str]:
    """This process's environment plus what makes ``robosync`` talk to ``server`` as robot
    ``bench`` of user ``bench`` (a new token), with its settings in ``config_dir``."""
    return {
        **os.environ,
        "ROBOSYNC_SERVER": server.url,
        "ROBOSYNC_TOKEN": server.make_token("bench", "bench"),
        "ROBOSYNC_CONFIG_DIR": str(config_dir),
        "ROBOSYNC_ROBOT": "bench",
    }


def compile_like_pip(bin_dir: Path | None = None) -> None:
    """Byte-compile the ``robosync`` package of ``bin_dir`` (else the one on PATH).

    ``pip install`` writes every module's ``.pyc``; an editable install does not, and
    where ``PYTHONDONTWRITEBYTECODE`` is set (as on our shared machines) every start
    would compile the client's modules again (~25 ms here), which no user pays.
    """
    exe = str(bin_dir / "robosync") if bin_dir else shutil.which("robosync")
    if exe is None:
        raise RuntimeError("`robosync` is not on PATH")
    python = Path(exe).parent / "python"
    interpreter = str(python) if python.exists() else sys.executable
    where = subprocess.run(
        [interpreter, "-c", "import os, robosync; print(os.path.dirname(robosync.__file__))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run([interpreter, "-m", "compileall", "-q", where], check=True)


def timed_child(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd`` to its end (it must succeed): wall seconds, and the child's CPU seconds
    (user + system, from rusage)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        used[child] = (int(fields[11]) + int(fields[12])) / tick
    tree, total = {pid}, 0.0
    for child in sorted(used):  # children have larger PIDs, except after a wrap
        if child in tree or parents[child] in tree:
            tree.add(child)
            total += used[child]
    return total


def spread(xs: list[float], digits: int = 2) -> str:
    """``min / median / max`` of ``xs`` (``-`` if there are none)."""
    if not xs:
        return "-"
    return f"{min(xs):.{digits}f} / {statistics.median(xs):.{digits}f} / {max(xs):.{digits}f}"
