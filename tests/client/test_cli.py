"""The ``robosync`` command as an operator runs it, against a real server."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

from tests.client.conftest import Robot, folder_digests, project_name, sha

Fleet = Callable[[str], Robot]


def test_login_saves_credentials_that_later_commands_use(fleet: Fleet, tmp_path: Path):
    r = fleet("r1")
    env_less = {k: v for k, v in r.env().items() if k not in ("ROBOSYNC_SERVER", "ROBOSYNC_TOKEN")}
    r.env = lambda: env_less  # type: ignore[method-assign]
    out = r.cli("login", "--server", r.server, "--token", r.token)
    assert "logged in" in out.stdout
    creds = r.home / "config" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert json.loads(creds.read_text())["servers"][r.server]["token"] == r.token
    name = project_name()
    r.cli("init", name)
    listed = json.loads(r.cli("projects", "--json").stdout)
    assert name in [p["name"] for p in listed]


def test_operator_flow_init_push_status_log_rm_evict_fetch(fleet: Fleet):
    r = fleet("r1")
    name = project_name()
    r.root.mkdir(parents=True)
    (r.root / "cam").mkdir()
    (r.root / "cam" / "a.png").write_bytes(b"a" * 1000)
    (r.root / "b.png").write_bytes(b"b" * 1000)
    assert "created project" in r.cli("init", name).stdout
    push = r.cli("push", "-m", "first")
    assert push.stdout.startswith("pushed v1: +2 ~0 -0 files; uploaded 2 blobs")
    assert push.stderr == ""  # not a terminal: no progress drawing
    status = json.loads(r.cli("status", "--json").stdout)
    assert status["added"] == [] and status["base_version"] == 1 and not status["server_moved"]
    r.cli("rm", "b.png")
    assert json.loads(r.cli("push", "--json").stdout)["deleted"] == 1
    log = json.loads(r.cli("log", "--json").stdout)
    assert [v["number"] for v in log][:2] == [2, 1] and log[1]["message"] == "first"
    evicted = json.loads(r.cli("evict", "--json").stdout)
    assert evicted["evicted"] == ["cam/a.png"]
    assert folder_digests(r.root) == {}
    r.cli("fetch", "cam")
    assert folder_digests(r.root) == {"cam/a.png": sha(b"a" * 1000)}
    assert "nothing to push" in r.cli("push").stdout


def test_errors_are_one_line_with_what_to_do_and_traceback_only_with_debug(fleet: Fleet):
    r = fleet("r1")
    r.cli("init", project_name())
    env = r.env()
    r.env = lambda: {**env, "ROBOSYNC_TOKEN": "rs_not-a-real-token"}  # type: ignore[method-assign]
    out = r.cli("log", check=False)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robosync: error: ")
    assert "robosync login" in lines[0]
    debug = r.cli("--debug", "log", check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_outside_a_project_says_how_to_start_one(fleet: Fleet, tmp_path: Path):
    r = fleet("r1")
    out = r.cli("status", check=False)
    assert out.returncode == 1
    assert "not in a robosync project; run `robosync init NAME`" in out.stderr


def test_clone_and_pull_by_cli_show_merges(fleet: Fleet):
    r1, r2 = fleet("r1"), fleet("r2")
    name = project_name()
    r1.root.mkdir(parents=True)
    (r1.root / "x.png").write_bytes(b"base")
    r1.cli("init", name)
    r1.cli("push")
    r2.home.mkdir(parents=True)
    r2.cli("clone", name, str(r2.root))
    (r1.root / "x.png").write_bytes(b"one")
    r1.cli("push")
    (r2.root / "x.png").write_bytes(b"two")
    out = r2.cli("push", "--policy", "keep-both")
    assert "merged x.png: kept-both" in out.stdout
    theirs = r1.cli("pull", "--json")
    assert json.loads(theirs.stdout)["downloaded"] == 1
    files = folder_digests(r1.root)
    assert files["x.png"] == sha(b"one")
    assert sorted(files.values()) == sorted([sha(b"one"), sha(b"two")])
    assert os.listdir(r1.root / ".robosync")
