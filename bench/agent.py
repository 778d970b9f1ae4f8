"""Robot agent benchmarks, printed as a table.

1. Capture-to-commit latency: images of 5 MB written with ``save_image`` at
   5 per second while ``robosync agent`` runs; for each image, the time from
   ``save_image`` returning to the first moment the server's head contains
   it (the head is polled every 0.1 s). p50 / p95 / max, per ``--settle``.
2. Idle CPU: the agent watching a pushed project of 10,000 files for a
   minute, nothing changing; CPU seconds of the agent process (user +
   system, from /proc) over that minute.
3. ``--bwlimit``: a push capped at 2 MiB/s through a counting proxy in front
   of the store; bytes the store received over a 30 s window, as a ratio to
   the cap.
4. Commands with no server (a port that refuses connections): wall time of
   ``robosync status`` (answers) and ``robosync push`` (gives up), 5 runs each.

Everything runs against a real ``robosync-server`` (embedded backend) and
the real ``robosync agent`` command in a subprocess. Run::

    python bench/agent.py [--images 60] [--settle 2 0.5] [--idle-files 10000]
        [--idle-seconds 60] [--bw-seconds 30] [--only offline latency idle bw]

Latency and idle CPU run against the server directly; only the ``--bwlimit``
run has the counting proxy (asyncio, in this process) in front of the store.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.client.proxy import CountingProxy  # noqa: E402
from tests.fixtures.server import ServerProcess, free_port  # noqa: E402

from robosync.client import ClientSettings, Project  # noqa: E402
from robosync.client.agentstate import AgentState, load_state  # noqa: E402
from robosync.client.index import ProjectConfig  # noqa: E402

MB = 1000 * 1000
MIB = 1024 * 1024


class Bench:
    """A server (its store behind a counting proxy) and fresh robots on it."""

    def __init__(self, work: Path, proxied: bool) -> None:
        self.work = work
        self.server = ServerProcess(work / "server")
        self.proxy = CountingProxy("127.0.0.1", self.server.port)
        if proxied:  # the proxy costs CPU: only where bytes are counted
            self.proxy.start()
            self.server.env["ROBOSYNC_PUBLIC_URL"] = self.proxy.url
        self.server.start()
        self.token = self.server.make_token("bench", "robot")

    def close(self) -> None:
        self.server.stop()
        if "ROBOSYNC_PUBLIC_URL" in self.server.env:
            self.proxy.stop()

    def settings(self, home: Path) -> ClientSettings:
        return ClientSettings(
            config_dir=home / "config", server=self.server.url, token=self.token, robot="bench"
        )

    def env(self, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "ROBOSYNC_CONFIG_DIR": str(home / "config"),
            "ROBOSYNC_SERVER": self.server.url,
            "ROBOSYNC_TOKEN": self.token,
            "ROBOSYNC_ROBOT": "bench",
        }

    def project(self, label: str) -> tuple[Path, Project]:
        home = self.work / f"{label}-{uuid.uuid4().hex[:6]}"
        root = home / "project"
        root.mkdir(parents=True)
        return home, Project.init(
            f"{label}-{uuid.uuid4().hex[:8]}", root, settings=self.settings(home)
        )

    def agent(self, home: Path, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "robosync.client.cli", "agent", *args],
            cwd=home / "project",
            env=self.env(home),
            stdout=open(home / "agent.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def wait_until(predicate, timeout: float, every: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the agent did not get there in time")
        time.sleep(every)


def latency(bench: Bench, images: int, settle: float) -> list[float]:
    """Seconds from capture to commit of each image, at 5 images/s of 5 MB."""
    home, p = bench.project("latency")
    agent = bench.agent(home, "--settle", str(settle))
    wait_until(lambda: (load_state(p.root) or _none()).state == "online", 60)
    captured: dict[str, float] = {}
    committed: dict[str, float] = {}
    done = threading.Event()

    def watch_head() -> None:
        base = 0
        while not (done.is_set() and len(committed) >= len(captured)):
            head = p.api.project(p.config.project_id).head_version
            if head > base:
                seen = time.monotonic()
                with p.api.changes(p.config.project_id, base) as (_, ops):
                    for op in ops:
                        committed.setdefault(op.path, seen)
                base = head
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_head)
    watcher.start()
    start = time.monotonic()
    for i in range(images):
        rel = f"cam0/{i:05}.png"
        p.save_image(rel, os.urandom(5 * MB))
        captured[rel] = time.monotonic()
        time.sleep(max(0.0, start + (i + 1) / 5 - time.monotonic()))
    done.set()
    watcher.join(timeout=120)
    stop(agent)
    p.close()
    return [committed[k] - captured[k] for k in captured]


def idle_cpu(bench: Bench, files: int, seconds: float) -> tuple[float, int]:
    """(CPU seconds of an idle agent over ``seconds``, versions it made meanwhile)."""
    home, p = bench.project("idle")
    for i in range(files):
        d = p.root / f"d{i // 1000:02}"
        d.mkdir(exist_ok=True)
        (d / f"{i:05}.png").write_bytes(os.urandom(64) + i.to_bytes(4, "big"))
    p.push()
    before_versions = p.info().head_version
    agent = bench.agent(home)
    state = lambda: load_state(p.root) or _none()  # noqa: E731
    wait_until(lambda: state().state == "online" and state().pending_files == 0, 120)
    time.sleep(2)
    t0 = _cpu_seconds(agent.pid)
    time.sleep(seconds)
    used = _cpu_seconds(agent.pid) - t0
    stop(agent)
    made = p.info().head_version - before_versions
    p.close()
    return used, made


def bandwidth(bench: Bench, seconds: float, cap: int) -> float:
    """Measured upload rate over ``seconds`` through the proxy, as a ratio to ``cap``."""
    home, p = bench.project("bw")
    for i in range(int(cap * (seconds + 10) / (8 * MIB)) + 1):
        p.save_image(f"img{i}.raw", os.urandom(8 * MIB))
    p.close()
    bench.proxy.reset()
    push = subprocess.Popen(
        [sys.executable, "-m", "robosync.client.cli", "push", "--bwlimit", str(cap)],
        cwd=home / "project",
        env=bench.env(home),
        stdout=subprocess.DEVNULL,
    )
    sent = lambda: sum(e.body_bytes for e in bench.proxy.puts())  # noqa: E731
    wait_until(lambda: sent() > 0, 60, every=0.01)
    time.sleep(2)  # past the start: measure the steady rate
    t0, b0 = time.monotonic(), sent()
    time.sleep(seconds)
    t1, b1 = time.monotonic(), sent()
    push.terminate()
    push.wait()
    return (b1 - b0) / (t1 - t0) / cap


def offline_commands(work: Path, runs: int = 5) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of `status` and `push` in a project whose server refuses connections.

    CPU (user + system of the command) is what the command costs whatever
    else runs on the machine; wall is what a person waits.
    """
    root = work / "offline" / "project"
    (root / ".robosync").mkdir(parents=True)
    ProjectConfig(f"http://127.0.0.1:{free_port()}", 1, "run42", "bench").save(root)
    for i in range(100):
        (root / f"{i:03}.png").write_bytes(os.urandom(1000))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROBOSYNC_")}
    env.update(ROBOSYNC_TOKEN="rs_x", ROBOSYNC_CONFIG_DIR=str(work / "offline" / "cfg"))
    out: dict[str, list[tuple[float, float]]] = {"status": [], "push": []}
    for _ in range(runs):
        for cmd in out:
            t = time.perf_counter()
            cpu = _children_cpu()
            subprocess.run(
                [sys.executable, "-m", "robosync.client.cli", cmd],
                cwd=root,
                env=env,
                capture_output=True,
            )
            out[cmd].append((time.perf_counter() - t, _children_cpu() - cpu))
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _none() -> AgentState:
    return AgentState(folder="", state="")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--settle", type=float, nargs="+", default=[2.0, 0.5])
    ap.add_argument("--idle-files", type=int, default=10_000)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--bw-seconds", type=float, default=30.0)
    ap.add_argument(
        "--only",
        nargs="+",
        choices=["offline", "latency", "idle", "bw"],
        default=["offline", "latency", "idle", "bw"],
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="robosync-bench-agent-") as work:
        if "offline" in args.only:
            print("commands with the server refusing connections (s, min / median / max)")
            for cmd, runs in offline_commands(Path(work)).items():
                for i, what in enumerate(("wall", "CPU")):
                    t = [r[i] for r in runs]
                    print(
                        f"  robosync {cmd}, {what}: {min(t):.2f} / {statistics.median(t):.2f} / "
                        f"{max(t):.2f}",
                        flush=True,
                    )
        bench = Bench(Path(work) / "direct", proxied=False)
        try:
            if "latency" in args.only:
                print(f"\ncapture-to-commit latency, {args.images} images of 5 MB at 5/s")
                print("| settle | p50 | p95 | max |\n|---|---|---|---|")
                for settle in args.settle:
                    lat = sorted(latency(bench, args.images, settle))
                    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
                    print(
                        f"| {settle:g} s | {statistics.median(lat):.2f} s | {p95:.2f} s "
                        f"| {lat[-1]:.2f} s |",
                        flush=True,
                    )
            if "idle" in args.only:
                used, made = idle_cpu(bench, args.idle_files, args.idle_seconds)
                print(
                    f"\nidle agent watching {args.idle_files} files for {args.idle_seconds:g} s: "
                    f"{used:.2f} CPU s ({100 * used / args.idle_seconds:.2f}% of a core), "
                    f"{made} versions made",
                    flush=True,
                )
        finally:
            bench.close()
        if "bw" in args.only:
            bench = Bench(Path(work) / "proxied", proxied=True)
            try:
                ratio = bandwidth(bench, args.bw_seconds, 2 * MIB)
                print(
                    f"\n--bwlimit 2M: measured at the store over {args.bw_seconds:g} s: "
                    f"{ratio:.3f} x the cap"
                )
            finally:
                bench.close()


if __name__ == "__main__":
    main()
