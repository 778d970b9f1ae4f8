"""Rough edges a new user hit with the ``robosync`` command (issue 11, section 2), each fixed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import unicodedata
import uuid
from pathlib import Path

from tests.client.clirobot import CliFleet, CliRobot
from tests.client.conftest import folder_digests, sha

REPO = Path(__file__).resolve().parents[2]


def _name() -> str:
    return f"e-{uuid.uuid4().hex[:10]}"


def _pushed_project(fleet: CliFleet, files: dict[str, bytes], robot: str = "r1") -> CliRobot:
    r = fleet.robot(robot)
    for path, data in files.items():
        r.write(path, data)
    r.run("init", _name())
    r.run("push")
    return r


def _clone(fleet: CliFleet, origin: CliRobot, robot: str, *extra: str, **kw: object) -> CliRobot:
    r = fleet.robot(robot)
    name = json.loads((origin.root / ".robosync" / "config.json").read_text())["project_name"]
    r.home.mkdir(parents=True, exist_ok=True)
    r.run("clone", name, str(r.root), *extra, cwd=r.home, **kw)  # type: ignore[arg-type]
    return r


# --- 2.1 NFD names -----------------------------------------------------------------------


def test_nfd_named_file_is_pushed_under_its_nfc_name_with_the_others(cli_fleet: CliFleet):
    nfd = unicodedata.normalize("NFD", "café.png")
    assert nfd != "café.png"
    r = cli_fleet.robot("mac")
    r.write(nfd, b"accented bytes")
    r.write("plain.png", b"plain bytes")
    r.run("init", _name())
    pushed = r.json("push")
    assert pushed["added"] == 2 and pushed["committed"]
    listed = r.json("ls")
    assert [f["path"] for f in listed["files"]] == ["café.png", "plain.png"]
    copy = _clone(cli_fleet, r, "linux")
    assert folder_digests(copy.root) == {
        "café.png": sha(b"accented bytes"),
        "plain.png": sha(b"plain bytes"),
    }
    assert "nothing to push" in r.run("push").stdout  # the NFD file is not seen as changed


# --- 2.2 paths relative to the current folder ------------------------------------------------


def test_paths_on_the_command_line_are_relative_to_the_current_folder(cli_fleet: CliFleet):
    r = _pushed_project(
        cli_fleet,
        {
            "cam0/frame_0006.jpg": b"6",
            "cam0/frame_0007.jpg": b"7",
            "cam1/a.jpg": b"a",
            "cam2/b.jpg": b"b",
        },
    )
    cam0 = r.root / "cam0"
    assert r.json("rm", "frame_0006.jpg", cwd=cam0)["removed"] == ["cam0/frame_0006.jpg"]
    assert r.json("rm", "../cam1", cwd=cam0)["removed"] == ["cam1/a.jpg"]
    absolute = str(r.root / "cam2" / "b.jpg")
    assert r.json("evict", absolute, cwd=cam0)["evicted"] == ["cam2/b.jpg"]
    assert r.json("fetch", "../cam2", cwd=cam0)["downloaded"] == 1
    r.run("push")
    restored = r.json("restore", "frame_0006.jpg", "--version", "1", cwd=cam0)
    assert restored["path"] == "cam0/frame_0006.jpg"
    assert (cam0 / "frame_0006.jpg").read_bytes() == b"6"

    outside = r.run("rm", "../../elsewhere.jpg", cwd=cam0, check=False)
    assert outside.returncode == 1
    lines = outside.stderr.strip().splitlines()
    assert len(lines) == 1 and "is outside the project folder" in lines[0]
    assert "unexpected" not in outside.stderr


# --- 2.5 modes of downloaded files ------------------------------------------------------------


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_downloaded_files_get_the_umask_mode_not_0600(cli_fleet: CliFleet):
    origin = _pushed_project(cli_fleet, {"a.png": b"aaa", "d/b.png": b"bbb"})
    clone = _clone(cli_fleet, origin, "r2", umask=0o022)
    assert {_mode(clone.root / "a.png"), _mode(clone.root / "d" / "b.png")} == {0o644}
    clone.run("evict", "a.png")
    clone.run("fetch", umask=0o002)
    assert _mode(clone.root / "a.png") == 0o664
    (clone.root / "a.png").unlink()
    clone.run("restore", "a.png", "--version", "1", umask=0o027)
    assert _mode(clone.root / "a.png") == 0o640
    origin.write("c.png", b"ccc")
    origin.run("push")
    clone.run("pull", umask=0o022)
    assert _mode(clone.root / "c.png") == 0o644


# --- 2.7 a server URL without scheme ---------------------------------------------------------


def test_server_url_without_scheme_is_refused_at_once_with_the_fix(cli_fleet: CliFleet):
    r = cli_fleet.robot("r1")
    port = cli_fleet.server.port
    out = r.run("login", "--server", f"127.0.0.1:{port}", "--token", r.token, check=False)
    assert out.returncode == 1
    assert f"use for example http://127.0.0.1:{port}" in out.stderr
    r.extra_env["ROBOSYNC_SERVER"] = f"127.0.0.1:{port}"
    out = r.run("projects", check=False)
    assert out.returncode == 1 and "no http:// or https:// scheme" in out.stderr


# --- 2.9 one rule for the robot name ----------------------------------------------------------


def test_robosync_robot_names_conflict_copies_and_versions_and_clones_can_differ(
    cli_fleet: CliFleet,
):
    origin = _pushed_project(cli_fleet, {"x.png": b"base"}, robot="arm-left")
    # Same host, same token: the second clone gets its own name with --robot.
    other = _clone(cli_fleet, origin, "ignored", "--robot", "arm-right")
    other.extra_env = {"ROBOSYNC_ROBOT": ""}  # unset: the folder's name applies
    config = json.loads((other.root / ".robosync" / "config.json").read_text())
    assert config["robot"] == "arm-right"
    (origin.root / "x.png").write_bytes(b"left")
    origin.run("push")
    (other.root / "x.png").write_bytes(b"right")
    other.run("push")
    assert any(p.startswith("x.conflict-arm-right-") for p in os.listdir(other.root))
    # ROBOSYNC_ROBOT wins over the name the folder saved.
    other.extra_env = {"ROBOSYNC_ROBOT": "arm-renamed"}
    other.write("y.png", b"y")
    other.run("push")
    robots = [v["robot"] for v in other.json("log")]
    assert robots[:3] == ["arm-renamed", "arm-right", "arm-left"]
    assert "token-robot" not in robots[:3]


# --- 2.10 restore a folder ---------------------------------------------------------------------


def test_restore_brings_back_a_whole_folder(cli_fleet: CliFleet):
    r = _pushed_project(cli_fleet, {"cam1/a.png": b"a", "cam1/sub/b.png": b"b", "c.png": b"c"})
    r.run("rm", "cam1")
    r.run("push")
    out = r.json("restore", "cam1", "--version", "1")
    assert out["downloaded"] + out["copied"] == 2
    assert folder_digests(r.root) == {
        "cam1/a.png": sha(b"a"),
        "cam1/sub/b.png": sha(b"b"),
        "c.png": sha(b"c"),
    }
    assert r.json("push")["added"] == 2


# --- 2.11 a merging push says what is not on disk ------------------------------------------


def test_merging_push_says_other_robots_files_are_not_on_disk_until_pull(cli_fleet: CliFleet):
    r1 = _pushed_project(cli_fleet, {"base.png": b"base"})
    r2 = _clone(cli_fleet, r1, "r2")
    r1.write("from_r1.png", b"one")
    r1.run("push")
    r2.write("from_r2.png", b"two")
    out = r2.run("push").stdout
    assert "1 file from other robots is not on disk yet: run `robosync pull`" in out
    assert not (r2.root / "from_r1.png").exists()
    status = r2.run("status").stdout
    assert "not downloaded: from_r1.png" in status and "run `robosync pull`" in status
    r2.run("pull")
    assert (r2.root / "from_r1.png").read_bytes() == b"one"


# --- 2.12 symlinks and invalid names: one report per scan --------------------------------------


def test_symlinks_and_invalid_names_are_reported_together_once_per_scan(cli_fleet: CliFleet):
    r = cli_fleet.robot("r1")
    r.write("ok.png", b"ok")
    r.write("bad\\name.png", b"bad")
    (r.root / "link.png").symlink_to(r.root / "ok.png")
    r.run("init", _name())
    push = r.run("push")
    warnings = [line for line in push.stderr.splitlines() if line.startswith("robosync: warning")]
    assert warnings == ["robosync: warning: 2 entries not synced (rename or replace to sync):"]
    assert push.stderr.count("'link.png': a symbolic link") == 1
    assert push.stderr.count("'bad\\\\name.png': contains a backslash") == 1
    status = r.run("status")
    assert status.stderr.count("robosync: warning") == 1
    listed = r.json("ls")
    assert [f["path"] for f in listed["files"]] == ["ok.png"]


# --- 2.13 --json errors ------------------------------------------------------------------


def test_json_errors_are_an_error_object_on_stdout_with_the_exit_code(cli_fleet: CliFleet):
    r = _pushed_project(cli_fleet, {"a.png": b"a"})
    r.extra_env["ROBOSYNC_TOKEN"] = "rs_not-a-real-token"
    out = r.run("--json", "log", check=False)
    assert out.returncode == 1 and out.stderr == ""
    error = json.loads(out.stdout)["error"]
    assert error["code"] == "unauthorized" and "robosync login" in error["message"]
    usage = r.run("rm", "--json", check=False)
    assert usage.returncode == 2
    assert json.loads(usage.stdout)["error"]["code"] == "usage"
    plain = r.run("rm", check=False)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr.startswith("robosync: error: ")


# --- 2.15 counts, log columns, docs ---------------------------------------------------------


def test_counts_are_pluralised_and_log_and_projects_have_columns(cli_fleet: CliFleet):
    r = cli_fleet.robot("r1")
    tag = uuid.uuid4().hex.encode()  # bytes no other test uploaded
    for name in ("a", "b", "c"):
        r.write(f"{name}.png", tag + name.encode())
    r.run("init", _name())
    first = r.run("push").stdout
    assert "uploaded 3 blobs" in first
    (r.root / "a.png").write_bytes(tag + b"a2")
    r.run("rm", "b.png")
    r.write("d.png", tag + b"d")
    second = r.run("push").stdout
    assert second.startswith("pushed v2: +1 ~1 -1 files; uploaded 2 blobs")
    (r.root / "c.png").write_bytes(tag + b"c2")
    third = r.run("push").stdout
    assert third.startswith("pushed v3: +0 ~1 -0 file; uploaded 1 blob (")
    log = r.run("log").stdout.splitlines()
    assert log[0].split()[:3] == ["VERSION", "DATE", "(UTC)"]
    assert log[1].split()[0] == "v3" and "+0 ~1 -0" in log[1]
    assert log[2].split()[0] == "v2" and "+1 ~1 -1" in log[2]
    assert "+3 ~0 -0" in log[3]
    projects = r.run("projects").stdout.splitlines()
    assert projects[0].split() == ["PROJECT", "ROLE", "VERSION", "FILES", "SIZE"]
    assert r.run("rm", "d.png").stdout.startswith("removed 1 file;")


def test_readme_points_to_the_repositorys_own_design_document():
    readme = (REPO / "README.md").read_text()
    assert "shared/DESIGN.md" not in readme
    assert "docs/DESIGN.md" in readme
    design = (REPO / "docs" / "DESIGN.md").read_text()
    for topic in ("content address", "data model", "merge", "API"):
        assert topic.lower() in design.lower(), topic


def test_robosync_help_lists_the_read_commands():
    out = subprocess.run(
        ["python", "-m", "robosync.client.cli", "--help"], capture_output=True, text=True
    )
    for command in ("ls", "get", "diff"):
        assert command in out.stdout
