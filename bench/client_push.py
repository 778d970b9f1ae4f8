"""Client benchmarks against a real SeaweedFS, printed as a table.

1. Push of N images of 8 MiB with 20% duplicates, and a clone of the
   project, against SeaweedFS; wall time as a ratio to a minimal parallel
   boto3 PUT / GET of the same unique bytes in the same run.
2. No-op push of a 10,000-image project, and push of 10 new images into it.
3. Peak memory (max RSS) of the ``robosync`` process for each of these.

Every client run is the real ``robosync`` command in a subprocess; its wall
time includes interpreter start-up. Run::

    python bench/client_push.py [--images 150] [--repeat 3] [--small 10000]

Clone is compared with three minimal parallel boto3 GETs of the same unique
bytes in the same run: into memory, into files, into fsync'ed files.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_store  # noqa: E402
from tests.fixtures.seaweedfs import SeaweedFS  # noqa: E402
from tests.fixtures.server import ServerProcess  # noqa: E402

MIB = 1024 * 1024


def run_cli(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, dict]:
    """Run ``robosync ARGS --json``: (wall seconds, max RSS of that process in KiB, result).

    ``/usr/bin/time`` measures the RSS: a child forked from this (large)
    process would report the parent's pages as its own peak.
    """
    with tempfile.NamedTemporaryFile() as rss_file:
        t = time.perf_counter()
        out = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "%M",
                "-o",
                rss_file.name,
                sys.executable,
                "-m",
                "robosync.client.cli",
                *args,
                "--json",
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
        )
        wall = time.perf_counter() - t
        if out.returncode != 0:
            raise RuntimeError(f"robosync {' '.join(args)} failed: {out.stderr.decode()}")
        rss = int(Path(rss_file.name).read_text().split()[-1])
    return wall, rss, json.loads(out.stdout or b"{}")


def make_images(root: Path, n: int, dup_ratio: float = 0.2) -> dict[str, bytes]:
    """Write ``n`` 8 MiB images, ``dup_ratio`` of them copies of others; return unique blobs."""
    unique_n = n - int(n * dup_ratio)
    uniques = {}
    root.mkdir(parents=True, exist_ok=True)
    for i in range(unique_n):
        data = os.urandom(8 * MIB)
        uniques[f"u{i}"] = data
        (root / f"img{i:04}.png").write_bytes(data)
    keys = list(uniques)
    for j in range(n - unique_n):
        (root / f"img{unique_n + j:04}.png").write_bytes(uniques[keys[j % len(keys)]])
    return uniques


def boto3_put_get(
    s3: SeaweedFS, blobs: dict[str, bytes], jobs: int, out_dir: Path
) -> tuple[float, float, float, float]:
    """Seconds for a parallel boto3 PUT, and GETs of ``blobs`` into memory, files, synced files.

    The GETs are the minimal baselines of a clone: into memory (no disk at
    all), into files (written, left to the page cache), and into files each
    fsync'ed before close (the durability a clone gives every file).
    """
    client = s3.client()
    bucket = s3.new_bucket()

    def put(kv: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1])

    def get(key: str) -> None:
        client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def get_file(key: str, sync: bool = False) -> None:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with open(out_dir / key, "wb") as f:
            for chunk in iter(lambda: body.read(MIB), b""):
                f.write(chunk)
            if sync:
                f.flush()
                os.fsync(f.fileno())

    def get_synced_file(key: str) -> None:
        get_file(key, sync=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    times = []
    keys = list(blobs)
    runs = ((put, list(blobs.items())), (get, keys), (get_file, keys), (get_synced_file, keys))
    for fn, items in runs:
        for stale in out_dir.iterdir():
            stale.unlink()
        t = time.perf_counter()
        with cf.ThreadPoolExecutor(jobs) as pool:
            list(pool.map(fn, items))  # type: ignore[arg-type]
        times.append(time.perf_counter() - t)
    return times[0], times[1], times[2], times[3]


def stats(xs: list[float]) -> str:
    """min / median / max."""
    return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}"


def main() -> None:
    """Run the benchmarks and print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", type=int, default=10_000, help="0 skips the small-file runs")
    ap.add_argument("--jobs", type=int, default=16)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="robosync-bench-"))
    (work / "weed").mkdir()
    with bench_store(work / "weed") as s3:
        env_server = s3.server_env()
        srv = ServerProcess(work / "server", env_server).start()
        try:
            token = srv.make_token("bench", "bench")
            env = {
                **os.environ,
                "ROBOSYNC_SERVER": srv.url,
                "ROBOSYNC_TOKEN": token,
                "ROBOSYNC_CONFIG_DIR": str(work / "cfg"),
                "ROBOSYNC_ROBOT": "bench",
            }
            rows = bench_big(a, s3, srv, env, work)
            if a.small:
                rows += bench_small(a, env, work)
        finally:
            srv.stop()
    print("\n| measure | min / median / max | note |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    shutil.rmtree(work, ignore_errors=True)


def bench_big(
    a: argparse.Namespace, s3: SeaweedFS, srv: ServerProcess, env: dict[str, str], work: Path
) -> list[tuple[str, str, str]]:
    """Push and clone of N x 8 MiB vs boto3 on the same unique bytes."""
    push_t, clone_t, put_t, get_t, getf_t, gets_t = [], [], [], [], [], []
    push_rss, clone_rss, clone_in_t = [], [], []
    for rep in range(a.repeat):
        src = work / f"big{rep}"
        uniques = make_images(src, a.images)
        name = f"big-{uuid.uuid4().hex[:8]}"
        run_cli(["init", name, str(src)], work, env)
        wall, rss_p, res = run_cli(["push", "--jobs", str(a.jobs)], src, env)
        push_t.append(wall)
        push_rss.append(rss_p / 1024)
        dst = work / f"clone{rep}"
        wall_c, rss_c, _ = run_cli(["clone", name, str(dst), "--jobs", str(a.jobs)], work, env)
        clone_t.append(wall_c)
        clone_rss.append(rss_c / 1024)
        shutil.rmtree(dst)
        clone_in_t.append(_inprocess_clone(name, dst, a.jobs, env))
        put, get, getf, gets = boto3_put_get(s3, uniques, a.jobs, work / f"boto{rep}")
        put_t.append(put)
        get_t.append(get)
        getf_t.append(getf)
        gets_t.append(gets)
        shutil.rmtree(work / f"boto{rep}")
        print(
            f"rep {rep}: push {wall:.2f}s (uploaded {res['uploaded_blobs']} blobs) "
            f"clone {wall_c:.2f}s  boto3 put {put:.2f}s get {get:.2f}s get-to-files {getf:.2f}s "
            f"get-to-synced-files {gets:.2f}s",
            file=sys.stderr,
        )
        shutil.rmtree(src)
        shutil.rmtree(dst)
    push_ratio = [p / b for p, b in zip(push_t, put_t, strict=True)]
    clone_ratio = [c / b for c, b in zip(clone_t, get_t, strict=True)]
    clone_ratio_f = [c / b for c, b in zip(clone_t, getf_t, strict=True)]
    clone_ratio_s = [c / b for c, b in zip(clone_t, gets_t, strict=True)]
    in_ratio = [c / b for c, b in zip(clone_in_t, get_t, strict=True)]
    in_ratio_f = [c / b for c, b in zip(clone_in_t, getf_t, strict=True)]
    in_ratio_s = [c / b for c, b in zip(clone_in_t, gets_t, strict=True)]
    n = a.images
    return [
        (f"push {n} x 8 MiB, 20% dup (s)", stats(push_t), "robosync push, incl. hashing"),
        (f"boto3 PUT of the {n - n // 5} unique (s)", stats(put_t), f"{a.jobs} threads"),
        ("push / boto3 PUT", stats(push_ratio), "goal <= 1.2"),
        (f"clone {n} x 8 MiB (s)", stats(clone_t), "robosync clone, verified"),
        ("boto3 GET of the unique (s)", stats(get_t), f"{a.jobs} threads"),
        ("clone / boto3 GET", stats(clone_ratio), "goal <= 1.2"),
        ("boto3 GET of the unique into files (s)", stats(getf_t), "written, no fsync"),
        ("clone / boto3 GET into files", stats(clone_ratio_f), f"clone writes {n} files + fsync"),
        ("boto3 GET of the unique into fsync'ed files (s)", stats(gets_t), "same durability"),
        ("clone / boto3 GET into fsync'ed files", stats(clone_ratio_s), "same run"),
        (f"clone {n} x 8 MiB, in-process (s)", stats(clone_in_t), "no interpreter start-up"),
        ("in-process clone / boto3 GET into memory", stats(in_ratio), "goal <= 1.2"),
        ("in-process clone / boto3 GET into files", stats(in_ratio_f), ""),
        ("in-process clone / boto3 GET into fsync'ed files", stats(in_ratio_s), ""),
        ("push peak RSS (MiB)", stats(push_rss), "goal < 150"),
        ("clone peak RSS (MiB)", stats(clone_rss), "goal < 150"),
    ]


def bench_small(
    a: argparse.Namespace, env: dict[str, str], work: Path
) -> list[tuple[str, str, str]]:
    """No-op push of a large project and push of 10 new images into it."""
    src = work / "small"
    for i in range(a.small):
        d = src / f"cam{i % 20}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:06}.png").write_bytes(os.urandom(2048))
    name = f"small-{uuid.uuid4().hex[:8]}"
    run_cli(["init", name, str(src)], work, env)
    first, rss_first, _ = run_cli(["push"], src, env)
    noop, ten, inproc, rss = [], [], [], [rss_first / 1024]
    for rep in range(a.repeat):
        w, r, res = run_cli(["push"], src, env)
        assert not res["committed"]
        noop.append(w)
        rss.append(r / 1024)
        inproc.append(_inprocess_noop(src, env))
        for j in range(10):
            (src / "new" / f"{rep}-{j}.png").parent.mkdir(exist_ok=True)
            (src / "new" / f"{rep}-{j}.png").write_bytes(os.urandom(2048))
        w, r, res = run_cli(["push"], src, env)
        assert res["added"] == 10
        ten.append(w)
        rss.append(r / 1024)
    return [
        (f"first push of {a.small} x 2 KiB (s)", f"{first:.2f}", "once"),
        (f"no-op push of {a.small} images, CLI (s)", stats(noop), "incl. ~0.3 s start-up"),
        (f"no-op push of {a.small} images, in-process (s)", stats(inproc), "goal < 0.5"),
        (f"push of 10 new into {a.small} (s)", stats(ten), "CLI"),
        (f"client peak RSS, {a.small}-image runs (MiB)", stats(rss), "goal < 150"),
    ]


def _inprocess_clone(name: str, dst: Path, jobs: int, env: dict[str, str]) -> float:
    """Seconds of ``clone()`` inside an already started interpreter (as boto3 is timed)."""
    code = (
        "import sys, time; from robosync.client import clone\n"
        "t = time.perf_counter(); clone(sys.argv[1], sys.argv[2], jobs=int(sys.argv[3])).close()\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, name, str(dst), str(jobs)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _inprocess_noop(src: Path, env: dict[str, str]) -> float:
    code = (
        "import time; from robosync.client import Project\n"
        "p = Project.open('.'); t = time.perf_counter(); r = p.push()\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=src, env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


if __name__ == "__main__":
    main()
