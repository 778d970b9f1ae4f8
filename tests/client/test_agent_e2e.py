"""The robot agent as a real process against a real server, its store behind a counting proxy.

One embedded server per module (stopped and started by the offline test);
the proxy in front of its blob routes counts what the store really received.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from robosync.client import Project
from robosync.client.agentstate import load_state
from robosync.digest import BLOCK_SIZE
from tests.client.conftest import Robot, folder_digests, project_name
from tests.client.proxy import CountingProxy, wait_for
from tests.fixtures.server import ServerProcess, free_port


class Site:
    """The module's server and the proxy in front of its store."""

    def __init__(self, server: ServerProcess, proxy: CountingProxy) -> None:
        self.server = server
        self.proxy = proxy

    def robot(self, tmp_path: Path, name: str) -> Robot:
        token = self.server.make_token(f"user-{uuid.uuid4().hex[:8]}", name)
        return Robot(name, self.server.url, token, tmp_path / name)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    proc = ServerProcess(tmp_path_factory.mktemp("agent-server"))
    proxy = CountingProxy("127.0.0.1", proc.port).start()
    proc.env["ROBOSYNC_PUBLIC_URL"] = proxy.url
    proc.start()
    try:
        yield Site(proc, proxy)
    finally:
        proc.stop()
        proxy.stop()


class AgentProcess:
    """``robosync agent`` running as ``robot``; its log in a file."""

    def __init__(self, robot: Robot, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = robot.home / f"agent-{uuid.uuid4().hex[:6]}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "robosync.client.cli", "agent", *args],
                cwd=robot.root,
                env={**robot.env(), **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def text(self) -> str:
        """What the agent logged so far."""
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took to exit)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"agent ignored SIGTERM:\n{self.text()}") from None
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for a in started:
        a.kill()


def head(robot: Robot) -> int:
    with robot.open() as p:
        return p.info().head_version


def manifest(robot: Robot, version: int | None = None) -> dict[str, int]:
    """path → size of a version (head by default)."""
    with robot.open() as p, p.api.manifest(p.config.project_id, version) as (_, entries):
        return {e.path: e.size for e in entries}


def capture(p: Project, rel: str, size: int) -> bytes:
    data = os.urandom(size)
    p.save_image(rel, data)
    return data


def copy_slowly(src: bytes, dest: Path, pieces: int, pause: float) -> None:
    """A plain (non-atomic) copy, written piece by piece, as a slow camera driver would."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    step = -(-len(src) // pieces)
    with open(dest, "wb") as f:
        for i in range(0, len(src), step):
            f.write(src[i : i + step])
            f.flush()
            time.sleep(pause)


def agent_state(robot: Robot) -> dict:
    """The agent's state file of the robot's folder (as `robosync agent status` reads it)."""
    state = load_state(robot.root)
    return state.to_dict() if state else {"state": None}


def poll(predicate, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    """``wait_for`` at a pace that leaves the CPU to the processes under test."""
    return wait_for(predicate, timeout=timeout, every=0.25)


def test_captures_while_server_down_arrive_once_when_it_is_back(
    site: Site, tmp_path: Path, agents: list[AgentProcess]
):
    r = site.robot(tmp_path, "r1")
    r.init(project_name()).close()
    # Counted from here: the agent may push as soon as the server is back.
    site.proxy.reset()
    site.server.stop()
    try:
        agents.append(AgentProcess(r, "--settle", "0.3", "--max-backoff", "1"))
        with r.open() as p:
            for i in range(10):
                capture(p, f"cam0/{i:04}.png", 50_000 + i)
        big = os.urandom(BLOCK_SIZE + 1000)
        copy_slowly(big, r.root / "cam1" / "big.raw", pieces=4, pause=0.05)
        shutil.copyfile(r.root / "cam0" / "0001.png", r.root / "cam1" / "copy.png")
        assert poll(lambda: agent_state(r)["state"] == "offline", timeout=20)
        # `status` needs no server (and not the folder lock the agent may hold)
        st = json.loads(r.cli("status", "--json").stdout)
        assert st["head_version"] is None and "unreachable" in st["remote_error"]
        assert len(st["added"]) == 12, st
        # The count is the agent's, as of its last attempt: it may have scanned
        # before the copy landed, and catches up at its next retry (within 1 s).
        shown: list[dict] = []

        def agent_shows_all_pending() -> bool:
            shown.append(json.loads(r.cli("agent", "status", "--json").stdout)[0])
            return shown[-1]["pending_files"] == 12

        assert poll(agent_shows_all_pending, timeout=10), shown[-1]
        state = shown[-1]
        assert state["running"] and state["state"] == "offline", state
        assert "unreachable" in state["last_error"], state
    finally:
        site.server.start()
    assert poll(lambda: len(manifest(r)) == 12, timeout=60), agents[0].text()
    code, _ = agents[0].terminate()
    assert code == 0
    log = agents[0].text()
    assert log.count("offline:") == 1, log  # one line per state change, not per retry
    assert "back online" in log
    # every part the store accepted, accepted once
    accepted = Counter(e.part_key for e in site.proxy.puts(accepted=True))
    assert accepted and max(accepted.values()) == 1
    clone_robot = Robot("c1", r.server, r.token, tmp_path / "c1")
    clone_robot.clone(Project.open(r.root, settings=r.settings).config.project_name).close()
    assert folder_digests(clone_robot.root) == folder_digests(r.root)
    assert agent_state(r)["state"] == "stopped"


def test_capture_burst_is_committed_in_batches_never_partial(
    site: Site, tmp_path: Path, agents: list[AgentProcess]
):
    count = int(os.environ.get("ROBOSYNC_TEST_BURST", "200"))
    r = site.robot(tmp_path, "r2")
    r.init(project_name()).close()
    agents.append(AgentProcess(r, "--settle", "0.5"))
    slow = os.urandom(300_000)
    writer = threading.Thread(
        target=copy_slowly, args=(slow, r.root / "slow" / "frame.raw", 30, 0.1)
    )
    with r.open() as p:
        writer.start()
        started = time.monotonic()
        for i in range(count):
            capture(p, f"burst/{i:05}.png", 20_000)
            time.sleep(max(0.0, started + (i + 1) / 20 - time.monotonic()))  # ~20 per second
        writer.join()
    assert poll(lambda: len(manifest(r)) == count + 1, timeout=60), agents[0].text()
    versions = head(r)
    assert versions < count / 5, f"{versions} commits for {count} images: not batched"
    # no version ever held a file still being written
    for v in range(1, versions + 1):
        sizes = manifest(r, v)
        assert sizes.get("slow/frame.raw", len(slow)) == len(slow), f"v{v} has a partial file"
        assert all(size == 20_000 for path, size in sizes.items() if path.startswith("burst/"))
    assert not any(n.startswith(".robosync-tmp") for n in manifest(r))


def test_sigterm_mid_upload_ends_fast_and_restart_resumes(
    site: Site, tmp_path: Path, agents: list[AgentProcess]
):
    r = site.robot(tmp_path, "r3")
    with r.init(project_name()) as p:
        capture(p, "big.raw", 3 * BLOCK_SIZE)
    site.proxy.reset()
    site.proxy.rate = 8 * 1024 * 1024  # per connection: a part takes ~1 s
    try:
        agents.append(AgentProcess(r, "--settle", "0", "--jobs", "1"))
        assert wait_for(lambda: len(site.proxy.puts(accepted=True)) >= 1, timeout=60)
        assert wait_for(lambda: len(site.proxy.puts()) >= 2, timeout=30)
        code, took = agents[0].terminate()
    finally:
        site.proxy.rate = None
    assert code == 0 and took < 10, f"exit {code} after {took:.1f}s"
    assert agent_state(r)["state"] == "stopped"
    accepted_before = len(site.proxy.puts(accepted=True))
    assert accepted_before < 3, "SIGTERM must land before the upload finished"
    agents.append(AgentProcess(r, "--settle", "0"))
    assert poll(lambda: "big.raw" in manifest(r), timeout=60), agents[1].text()
    accepted = Counter(e.part_key for e in site.proxy.puts(accepted=True))
    assert len(accepted) == 3 and max(accepted.values()) == 1, accepted
    # The agent logs the push once the commit is answered: a moment after the server shows it.
    assert poll(lambda: "parts already there" in agents[1].text(), timeout=10), agents[1].text()


def test_bwlimit_caps_upload_rate_at_the_store(site: Site, tmp_path: Path):
    r = site.robot(tmp_path, "r4")
    cap = 1024 * 1024
    with r.init(project_name()) as p:
        for i in range(4):
            capture(p, f"img{i}.raw", 2 * 1024 * 1024)
    site.proxy.reset()
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            samples.append((time.monotonic(), sum(e.body_bytes for e in site.proxy.puts())))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r.cli("push", "--bwlimit", "1M")
    finally:
        done.set()
        sampler.join()
    moving = [(t, n) for t, n in samples if n > 0]
    (t0, n0), (t1, n1) = moving[0], next(s for s in moving if s[1] == moving[-1][1])
    rate = (n1 - n0) / (t1 - t0)
    assert 0.9 * cap <= rate <= 1.1 * cap, f"{rate / cap:.2f} x the cap"


def test_keep_free_evicts_only_committed_files(tmp_path: Path, site: Site, agents):
    disk = tmp_path / "disk"
    disk.mkdir()
    # As root here; through passwordless sudo on a CI runner.
    sudo = ["sudo", "-n"] if os.geteuid() != 0 and shutil.which("sudo") else []
    mounted = subprocess.run(
        [*sudo, "mount", "-t", "tmpfs", "-o", "size=24m,mode=1777", "tmpfs", str(disk)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs in CI: {mounted.stderr.decode()}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        r = Robot("r5", site.server.url, site.robot(tmp_path, "x").token, disk / "home")
        with r.init(project_name()) as p:
            for i in range(6):
                capture(p, f"old/{i}.raw", 1024 * 1024)
            assert p.push().committed
            for i in range(6):
                capture(p, f"new/{i}.raw", 1024 * 1024)
        ballast = disk / "ballast"
        ballast.write_bytes(b"\0" * (8 * 1024 * 1024))
        free = shutil.disk_usage(disk).free
        # The server is unreachable for this agent: nothing new can be committed.
        dead = f"http://127.0.0.1:{free_port()}"
        keep = free + 3 * 1024 * 1024
        agents.append(AgentProcess(r, "--keep-free", str(keep), env={"ROBOSYNC_SERVER": dead}))
        assert wait_for(lambda: shutil.disk_usage(disk).free >= keep, timeout=30), agents[0].text()
        agents[0].terminate()
        on_disk = {p.relative_to(r.root).as_posix() for p in r.root.rglob("*.raw")}
        assert {f"new/{i}.raw" for i in range(6)} <= on_disk  # unsynced: all kept
        evicted = {f"old/{i}.raw" for i in range(6)} - on_disk
        assert 3 <= len(evicted) < 6  # the oldest committed ones, only as many as needed
        assert "evicted" in agents[0].text()
        assert agent_state(r)["evicted_files"] == len(evicted)
    finally:
        for a in agents:
            a.kill()
        subprocess.run([*sudo, "umount", str(disk)], check=False)


def test_only_if_and_window_hold_syncing_back(
    site: Site, tmp_path: Path, agents: list[AgentProcess]
):
    r = site.robot(tmp_path, "r6")
    with r.init(project_name()) as p:
        capture(p, "a.png", 1000)
    flag = tmp_path / "wifi-up"
    agents.append(AgentProcess(r, "--settle", "0", "--only-if", f"test -e {flag}"))
    assert poll(lambda: agent_state(r)["state"] == "waiting", timeout=30), agents[0].text()
    assert head(r) == 0 and f"the check `test -e {flag}` fails" in agents[0].text()
    agents[0].terminate()
    # a window that is never now (one minute wide, twelve hours away)
    start, end = (time.localtime(time.time() + 12 * 3600 + d) for d in (0, 60))
    window = f"{start.tm_hour:02}:{start.tm_min:02}-{end.tm_hour:02}:{end.tm_min:02}"
    flag.touch()
    agents.append(
        AgentProcess(r, "--settle", "0", "--only-if", f"test -e {flag}", "--window", window)
    )
    assert poll(lambda: agent_state(r)["state"] == "waiting", timeout=30), agents[1].text()
    assert head(r) == 0 and "outside the sync window" in agents[1].text()
    agents[1].terminate()
    agents.append(AgentProcess(r, "--settle", "0", "--only-if", f"test -e {flag}"))
    assert poll(lambda: head(r) == 1, timeout=30), agents[2].text()


def test_evict_after_push_on_one_robot_and_pull_on_another(
    site: Site, tmp_path: Path, agents: list[AgentProcess]
):
    a = site.robot(tmp_path, "ra")
    name = project_name()
    a.init(name).close()
    b = Robot("rb", a.server, a.token, tmp_path / "rb")
    b.clone(name).close()
    agents.append(AgentProcess(a, "--settle", "0.2", "--evict-after-push"))
    agents.append(AgentProcess(b, "--pull", "--pull-interval", "1"))
    with a.open() as p:
        data = capture(p, "cam0/1.png", 30_000)
    assert poll(lambda: (b.root / "cam0" / "1.png").exists(), timeout=60), agents[1].text()
    assert (b.root / "cam0" / "1.png").read_bytes() == data
    assert poll(lambda: not (a.root / "cam0" / "1.png").exists(), timeout=30), agents[0].text()
    assert "evicted 1 committed files" in agents[0].text()
    with a.open() as p:
        assert p.status(remote=False).evicted == ["cam0/1.png"]
