"""Every command with no server: `status` still answers, the others fail fast and say where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from robosync.client.index import ProjectConfig
from tests.fixtures.server import free_port


def dead_project(tmp_path: Path) -> tuple[Path, str]:
    """A project folder whose server refuses every connection."""
    root = tmp_path / "proj"
    (root / ".robosync").mkdir(parents=True)
    url = f"http://127.0.0.1:{free_port()}"
    ProjectConfig(url, 1, "run42", "r1").save(root)
    (root / "cam").mkdir()
    (root / "cam" / "a.png").write_bytes(b"a" * 1000)
    (root / "b.png").write_bytes(b"b" * 10)
    return root, url


def run(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROBOSYNC_")}
    env.update(ROBOSYNC_TOKEN="rs_test", ROBOSYNC_CONFIG_DIR=str(root.parent / "cfg"))
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "robosync.client.cli", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out, time.monotonic() - started


def test_status_lists_local_changes_with_the_server_down(tmp_path: Path):
    root, url = dead_project(tmp_path)
    out, _ = run(root, "status")
    assert out.returncode == 0, out.stderr
    assert f"server: unknown (server at {url} unreachable" in out.stdout
    assert "added:          b.png" in out.stdout and "cam/a.png" in out.stdout
    data = json.loads(run(root, "status", "--json")[0].stdout)
    assert data["head_version"] is None and data["added"] == ["b.png", "cam/a.png"]
    assert "retry" not in out.stderr  # one quick look at the server, no retries


def test_push_to_a_refused_server_fails_fast_naming_the_url(tmp_path: Path):
    root, url = dead_project(tmp_path)
    out, _ = run(root, "push")
    assert out.returncode == 1
    for n in range(2, 6):
        assert f"server at {url} unreachable, retry {n}/5" in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"robosync: error: server at {url} unreachable"), last
    assert "retry 6/" not in out.stderr  # a short budget: 5 attempts about 1 s apart


def test_mistyped_port_fails_fast_naming_the_url(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}"
    out = subprocess.run(
        [sys.executable, "-m", "robosync.client.cli", "projects"],
        env={**os.environ, "ROBOSYNC_SERVER": url, "ROBOSYNC_TOKEN": "rs_x"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert f"robosync: error: server at {url} unreachable" in out.stderr
    assert out.stderr.count("unreachable, retry") == 4
