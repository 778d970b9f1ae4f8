"""deploy/nginx.conf, run by a real nginx in front of two real upstream processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from robosync.errors import RateLimited, error_from_body
from robosync.server.nginx import Nginx, free_port, nginx_binary
from tests.limits.availability import service_missing

# A stand-in replica: answers every method with its name and what it received.
ECHO = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        n = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip(), 16)
                n += len(self.rfile.read(size)) if size else 0
                self.rfile.readline()
                if size == 0:
                    break
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                got = len(self.rfile.read(min(left, 1 << 20)))
                n, left = n + got, left - got
        body = json.dumps({
            "name": sys.argv[2], "method": self.command, "path": self.path, "bytes": n,
            "xff": self.headers.get("X-Forwarded-For"),
            "proto": self.headers.get("X-Forwarded-Proto"),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = answer

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
"""


class Upstream:
    """One echo replica in its own process."""

    def __init__(self, script: Path, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port), name])
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    @property
    def address(self) -> str:
        """host:port of this replica."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Terminate this replica's process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Upstream]]:
    """Two running echo replicas."""
    if nginx_binary() is None:
        service_missing("nginx is not installed (apt-get install nginx-light)")
    script = tmp_path_factory.mktemp("echo") / "echo.py"
    script.write_text(ECHO)
    replicas = [Upstream(script, "a"), Upstream(script, "b")]
    yield replicas
    for r in replicas:
        r.stop()


@pytest.fixture
def balancer(upstreams: list[Upstream]) -> Iterator[Nginx]:
    """nginx in front of both replicas, 2 requests/s per token with a burst of 5."""
    with Nginx([u.address for u in upstreams], rate="2r/s", burst=5) as nginx:
        yield nginx


def test_the_config_passes_nginx_t(upstreams: list[Upstream]) -> None:
    nginx = Nginx([u.address for u in upstreams])
    try:
        assert "syntax is ok" in nginx.test_config()
    finally:
        nginx.stop()


def test_requests_reach_every_replica_with_forwarded_headers(balancer: Nginx) -> None:
    with httpx.Client(base_url=balancer.url) as http:
        answers = [http.get("/healthz").json() for _ in range(10)]
    assert {a["name"] for a in answers} == {"a", "b"}
    assert all(a["xff"] == "127.0.0.1" and a["proto"] == "http" for a in answers)


def test_a_burst_from_one_token_gets_429_in_the_api_error_format(balancer: Nginx) -> None:
    flood = {"Authorization": "Bearer robot-1"}
    with httpx.Client(base_url=balancer.url) as http:
        statuses = [http.get("/v1/projects", headers=flood) for _ in range(30)]
        other = http.get("/v1/projects", headers={"Authorization": "Bearer robot-2"})
    refused = [r for r in statuses if r.status_code == 429]
    assert 0 < len(refused) < 30
    assert sum(r.status_code == 200 for r in statuses) >= 6  # the burst plus the first
    err = error_from_body(429, refused[0].json())
    assert isinstance(err, RateLimited)
    assert err.details["limit"] == "load_balancer"
    assert refused[0].headers["Retry-After"] == "1"
    assert other.status_code == 200


def test_requests_without_a_token_are_not_counted(balancer: Nginx) -> None:
    with httpx.Client(base_url=balancer.url) as http:
        statuses = {http.get("/readyz").status_code for _ in range(30)}
    assert statuses == {200}


def test_a_full_size_part_streams_through_to_the_local_store(balancer: Nginx) -> None:
    part = b"x" * (8 * 1024 * 1024 + 1)
    with httpx.Client(base_url=balancer.url, timeout=30) as http:
        put = http.put("/v1/store-uploads/u1/1?sig=s", content=part)
        too_big = http.put("/v1/store/blobs/x?sig=s", content=b"x" * (17 * 1024 * 1024))
        commit = http.post("/v1/projects/1/commits", content=b"y" * (20 * 1024 * 1024))
    assert put.status_code == 200 and put.json()["bytes"] == len(part)
    assert too_big.status_code == 413
    assert commit.status_code == 200 and commit.json()["bytes"] == 20 * 1024 * 1024


def test_signatures_and_tokens_stay_out_of_the_access_log(balancer: Nginx) -> None:
    with httpx.Client(base_url=balancer.url) as http:
        http.get("/v1/store/blobs/abc?signature=SECRETSIG", headers={"Authorization": "Bearer T0K"})
    time.sleep(0.2)
    log = balancer.access_log()
    assert "/v1/store/blobs/abc" in log
    assert "SECRETSIG" not in log and "T0K" not in log


def test_a_dead_replica_is_skipped(upstreams: list[Upstream], tmp_path: Path) -> None:
    dead = free_port()
    with (
        Nginx([upstreams[0].address, f"127.0.0.1:{dead}"]) as nginx,
        httpx.Client(base_url=nginx.url) as http,
    ):
        answers = [http.post("/v1/uploads", content=b"{}") for _ in range(6)]
    assert {r.status_code for r in answers} == {200}
    assert {r.json()["name"] for r in answers} == {"a"}
