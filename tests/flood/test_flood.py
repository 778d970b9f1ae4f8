"""One user floods the API; another user's requests keep being served, and nothing is lost.

The flooder runs a real ``robosync push --jobs 200`` of 600 small images while a
raw loop of upload requests (bounded in count and time) hammers the same user's
limits. Limits are set small so both are hit: the request rate and the cap on
uploads in flight. The other user's latency is printed (run with ``-s``) and
written to ``flood-latency.json`` in the test's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from robosync.digest import digest_of_block_hashes
from tests.client.conftest import folder_digests, project_name
from tests.faults.conftest import Lab, Site, start_cli, write_images
from tests.fixtures.server import ServerProcess

IMAGES = 600
IMAGE_BYTES = 4 * 1024
FLOOD_REQUESTS = 400
FLOOD_SECONDS = 10.0
FLOOD_THREADS = 4
LIMITS = {
    "ROBOSYNC_RATE_LIMIT": "60/5seconds",
    "ROBOSYNC_MAX_INFLIGHT_UPLOADS": "200",
    # Abandoned upload sessions of the flood stop counting after this long.
    "ROBOSYNC_PRESIGN_EXPIRY_SECONDS": "20",
}


def random_items(n: int) -> list[dict[str, object]]:
    """``n`` upload items of blobs nobody has (valid digests of one random block each)."""
    items = []
    for _ in range(n):
        block = hashlib.sha256(os.urandom(16)).hexdigest()
        digest = digest_of_block_hashes([bytes.fromhex(block)])
        items.append({"digest": digest, "size": 1000, "blocks": [block]})
    return items


class RawFlood:
    """Threads POSTing /v1/uploads for fresh digests as fast as they can, bounded."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.answers: Counter[str] = Counter()
        self.sent = 0
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + FLOOD_SECONDS
        self.threads = [threading.Thread(target=self._run) for _ in range(FLOOD_THREADS)]

    def start(self) -> RawFlood:
        """Start flooding."""
        for t in self.threads:
            t.start()
        return self

    def join(self) -> None:
        """Wait until the flood's count or time is used up."""
        for t in self.threads:
            t.join()

    def _next(self) -> bool:
        with self.lock:
            if self.sent >= FLOOD_REQUESTS or time.monotonic() > self.deadline:
                return False
            self.sent += 1
            return True

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as http:
            while self._next():
                resp = http.post("/v1/uploads", json={"items": random_items(10)})
                key = str(resp.status_code)
                if resp.status_code == 429:
                    key += ":" + resp.json()["error"]["details"]["limit"]
                with self.lock:
                    self.answers[key] += 1


class Watcher:
    """Another user's GET /v1/projects every 150 ms (within its rate): status and latency."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as http:
            while not self.stop.is_set():
                start = time.perf_counter()
                status = http.get("/v1/projects").status_code
                self.latencies.append(time.perf_counter() - start)
                self.statuses[status] += 1
                self.stop.wait(0.15)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def test_a_flooding_user_finishes_its_push_and_does_not_slow_another_user(
    lab: Lab, site_on: Callable[[ServerProcess], Site], tmp_path: Path
) -> None:
    server = lab.server(LIMITS)
    flooder, other = site_on(server), site_on(server)
    robot = flooder.robot("flood-robot")
    write_images(robot.root, IMAGES, IMAGE_BYTES)
    name = project_name()
    robot.cli("init", name)
    calm = other.robot("calm-robot")
    write_images(calm.root, 3, 50 * 1024)
    calm_name = project_name()
    calm.cli("init", calm_name)

    watcher = Watcher(server.url, other.token)
    watcher.thread.start()
    flood = RawFlood(server.url, flooder.token).start()
    started = time.monotonic()
    push = start_cli(robot, "--debug", "push", "--jobs", "200")
    time.sleep(2)
    calm_start = time.monotonic()
    calm_out = calm.cli("push")
    calm_seconds = time.monotonic() - calm_start
    flood.join()
    try:
        _, push_log = push.communicate(timeout=240)
    finally:
        watcher.stop.set()
        watcher.thread.join()
    push_seconds = time.monotonic() - started

    waits = Counter(
        "inflight_uploads" if "in flight" in line else "requests"
        for line in push_log.splitlines()
        if "retry in" in line and "too many" in line
    )
    p50, p99 = percentile(watcher.latencies, 0.5), percentile(watcher.latencies, 0.99)
    report = {
        "other_user_requests": len(watcher.latencies),
        "other_user_p50_ms": round(p50 * 1000, 1),
        "other_user_p99_ms": round(p99 * 1000, 1),
        "other_user_max_ms": round(max(watcher.latencies) * 1000, 1),
        "other_user_statuses": dict(watcher.statuses),
        "other_user_small_push_s": round(calm_seconds, 2),
        "flood_answers": dict(flood.answers),
        "flooding_push_s": round(push_seconds, 1),
        "flooding_push_429_waits": dict(waits),
    }
    (tmp_path / "flood-latency.json").write_text(json.dumps(report, indent=2))
    print("\nflood:", json.dumps(report))

    assert push.returncode == 0, push_log[-2000:]
    assert flood.answers["429:requests"] > 0 and flood.answers["429:inflight_uploads"] > 0
    assert set(flood.answers) <= {"200", "429:requests", "429:inflight_uploads"}
    assert watcher.statuses.keys() == {200}, watcher.statuses
    assert calm_out.stdout.startswith("pushed v1: +3")
    assert p99 < 2.0, report
    state = flooder.project_state(name)
    assert state["head"] == 1 and state["live"] == IMAGES
    flooder.assert_clone_matches(name, folder_digests(robot.root))
    other.assert_clone_matches(calm_name, folder_digests(calm.root))
