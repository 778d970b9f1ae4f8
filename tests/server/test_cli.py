"""The robosync-server command: first token, tokens on the last line, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.fixtures.server import ServerProcess, server_command


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*server_command(), *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_prints_a_working_first_token_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        assert server.first_token is not None
        r = httpx.get(
            server.url + "/v1/projects", headers={"Authorization": f"Bearer {server.first_token}"}
        )
        assert r.status_code == 200
        server.restart()
        assert server.log_path.read_text().count("ROBOSYNC_TOKEN=") == 1
    finally:
        server.stop()


def test_create_token_prints_the_token_alone_on_the_last_line(tmp_path: Path) -> None:
    assert _run(tmp_path, "create-user", "dana").returncode == 0
    out = _run(tmp_path, "create-token", "dana", "--robot", "arm-1")
    assert out.returncode == 0, out.stderr
    token = out.stdout.splitlines()[-1]
    assert token.startswith("rs_") and " " not in token
    server = ServerProcess(tmp_path).start()
    try:
        r = httpx.get(server.url + "/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
    finally:
        server.stop()


def test_commands_fail_with_one_clear_line(tmp_path: Path) -> None:
    out = _run(tmp_path, "create-token", "nobody", "--robot", "r")
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == ["robosync-server: error: no user named 'nobody'"]
    assert _run(tmp_path, "create-user", "eve").returncode == 0
    again = _run(tmp_path, "create-user", "eve")
    assert again.returncode != 0
    assert "already exists" in again.stderr


def test_serve_help_lists_every_setting() -> None:
    from robosync.server.settings import Settings

    out = subprocess.run(
        [*server_command(), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    for name in Settings.model_fields:
        assert f"ROBOSYNC_{name.upper()}" in out.stdout


def test_migrate_brings_an_empty_database_to_the_newest_schema(tmp_path: Path) -> None:
    out = _run(tmp_path, "migrate")
    assert out.returncode == 0, out.stderr
    assert "was empty" in out.stdout
    assert "was 0001" in _run(tmp_path, "migrate").stdout
