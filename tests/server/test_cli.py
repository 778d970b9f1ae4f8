"""The robosync-server command: first token, tokens on the last line, clear errors."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import httpx

from robosync.server.processes import stop_process
from tests.fixtures.server import ServerProcess, free_port, server_command

REPO = Path(__file__).resolve().parents[2]


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
        token = server.first_token
        assert token is not None
        lines = server.log_path.read_text().splitlines()
        assert token in lines, "the bare token on a line of its own"
        login = f"robosync login --server {server.url} --token {token}"
        assert login in [line.strip() for line in lines], "the exact command a robot runs"
        assert "ROBOSYNC_TOKEN=" not in server.log_path.read_text()
        r = httpx.get(server.url + "/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        server.restart()
        assert server.log_path.read_text().count(token) == 2, "printed on first start only"
    finally:
        server.stop()


def test_serve_on_a_taken_port_fails_before_spending_the_first_token(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _run(data, "serve", "--port", str(port))
    assert out.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr
    assert "rs_" not in out.stdout + out.stderr, "no token printed for a server that cannot run"
    server = ServerProcess(data).start()
    try:
        assert server.first_token is not None, "the first token was not spent by the failed start"
    finally:
        server.stop()


def test_admin_commands_never_create_a_database(tmp_path: Path) -> None:
    default = tmp_path / "robosync-data"
    for command in (
        ["create-user", "dana"],
        ["create-token", "dana", "--robot", "r"],
        ["revoke-token", "dana", "--robot", "r"],
        ["gc", "--dry-run"],
    ):
        out = subprocess.run(
            [*server_command(), *command], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert out.returncode != 0, command
        assert f"no robosync database at {default / 'robosync.sqlite'}" in out.stderr, out.stderr
        assert "--data-dir" in out.stderr and "ROBOSYNC_DATA_DIR" in out.stderr
    assert not default.exists(), "a command other than serve/migrate created a database"


def test_quickstart_serve_and_admin_commands_share_one_database(tmp_path: Path) -> None:
    quickstart = (REPO / "README.md").read_text()
    serve = re.search(r"robosync-server serve[^\n`]*", quickstart)
    assert serve is not None
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*server_command(), *shlex.split(serve.group(0))[1:], "--port", str(port)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc)
        admin = [*server_command()]
        run = partial(subprocess.run, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert run([*admin, "create-user", "dana"]).returncode == 0
        made = run([*admin, "create-token", "dana", "--robot", "arm"])
        assert made.returncode == 0, made.stderr
        token = made.stdout.splitlines()[-1]
        r = httpx.get(url + "/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, "the admin command acted on another database than serve"
    finally:
        stop_process(proc, grace_seconds=10)
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"server at {url} never became ready")


def test_admin_commands_print_no_alembic_log_lines(tmp_path: Path) -> None:
    migrated = _run(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    for command in (["create-user", "dana"], ["gc", "--dry-run"], ["migrate"]):
        out = _run(tmp_path, *command)
        assert out.returncode == 0, out.stderr
        assert "alembic" not in out.stdout + out.stderr, command
        assert "Context impl" not in out.stdout + out.stderr, command


# Makes the server extra's modules unimportable, as on a robot with the client only.
_CLIENT_ONLY = """
import importlib.abc, sys
SERVER = {"sqlalchemy", "alembic", "fastapi", "uvicorn", "pydantic_settings", "boto3",
          "prometheus_client", "limits", "psycopg", "redis", "starlette"}
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in SERVER:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Absent())
from robosync.server.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_server_command_without_the_server_extra_says_how_to_install_it() -> None:
    for args in ([], ["serve"], ["create-user", "dana"], ["--help"]):
        out = subprocess.run(
            [sys.executable, "-c", _CLIENT_ONLY, *args], capture_output=True, text=True, timeout=60
        )
        assert out.returncode != 0, args
        assert "Traceback" not in out.stderr, out.stderr
        assert 'pip install "robosync[server]"' in out.stderr, out.stderr


def test_create_token_prints_the_token_alone_on_the_last_line(tmp_path: Path) -> None:
    assert _run(tmp_path, "migrate").returncode == 0
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
    assert _run(tmp_path, "migrate").returncode == 0
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
    from robosync.server.db import migrate

    assert f"was {migrate.head_revision()}" in _run(tmp_path, "migrate").stdout
    assert str(tmp_path.resolve() / "robosync.sqlite") in out.stdout, "says which database"
